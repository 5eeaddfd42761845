//! The workflow store in memory, beside the in-process bus (which holds one, so every handle built
//! from one bus sees the same workflows): the same contract as Redis — versions and compare-and-set,
//! an ended workflow expires after the retention, a bounded events log — behind one mutex. Not durable.

use super::*;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<State>>,
    opts: Options,
}

#[derive(Default)]
struct State {
    /// id → (document, version, expiry in ms for an ended workflow).
    docs: BTreeMap<String, (Workflow, Version, Option<u64>)>,
    events: VecDeque<(u64, WorkflowEvent)>,
    event_seq: u64,
    /// id → (drive lease holder, expiry in ms).
    leases: BTreeMap<String, (String, u64)>,
}

impl State {
    /// Drop a document past its expiry (as Redis would have), returning what is left.
    fn live(&mut self, id: &str, now: u64) -> Option<&(Workflow, Version, Option<u64>)> {
        if self.docs.get(id).is_some_and(|(_, _, exp)| exp.is_some_and(|e| e <= now)) {
            self.docs.remove(id);
        }
        self.docs.get(id)
    }
}

fn event_id(seq: u64) -> String {
    format!("0-{seq}")
}

impl MemoryStore {
    /// The same state, with these options.
    pub fn with_options(mut self, opts: Options) -> Self {
        self.opts = opts;
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: go on with it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expiry(&self, wf: &Workflow, now: u64) -> Option<u64> {
        wf.settled().then(|| now.saturating_add(self.opts.retention.as_millis() as u64))
    }

    pub async fn create(&self, wf: &Workflow) -> Result<Created, StoreError> {
        let now = crate::task::now_ms();
        let mut st = self.state();
        if let Some((w, v, _)) = st.live(&wf.id, now) {
            return Ok(Created::Exists(Box::new(w.clone()), *v));
        }
        let exp = self.expiry(wf, now);
        st.docs.insert(wf.id.clone(), (wf.clone(), 1, exp));
        Ok(Created::New)
    }

    pub async fn load(&self, id: &str) -> Result<Option<(Workflow, Version)>, StoreError> {
        let now = crate::task::now_ms();
        Ok(self.state().live(id, now).map(|(w, v, _)| (w.clone(), *v)))
    }

    pub async fn save(&self, wf: &Workflow, expected: Version) -> Result<bool, StoreError> {
        let now = crate::task::now_ms();
        let exp = self.expiry(wf, now);
        let mut st = self.state();
        match st.live(&wf.id, now) {
            Some((_, v, _)) if *v == expected => {
                st.docs.insert(wf.id.clone(), (wf.clone(), expected + 1, exp));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    pub async fn list(&self, filter: &ListFilter) -> Result<Page, StoreError> {
        let now = crate::task::now_ms();
        let cursor = filter.cursor.as_deref().and_then(parse_cursor);
        let limit = filter.limit();
        let mut st = self.state();
        st.docs.retain(|_, (_, _, exp)| !exp.is_some_and(|e| e <= now));
        let mut all: Vec<&Workflow> = st
            .docs
            .values()
            .map(|(w, _, _)| w)
            .filter(|w| filter.status.is_none_or(|s| s == w.status))
            .filter(|w| filter.tenant.as_ref().is_none_or(|t| *t == w.tenant_id))
            .filter(|w| after_cursor(w.created_at, &w.id, &cursor))
            .collect();
        all.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        let more = all.len() > limit;
        let workflows: Vec<Workflow> = all.into_iter().take(limit).cloned().collect();
        let cursor = if more || workflows.len() == limit { workflows.last().map(cursor_of) } else { None };
        Ok(Page { workflows, cursor })
    }

    pub async fn not_final(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let st = self.state();
        let mut open: Vec<(u64, &String)> =
            st.docs.iter().filter(|(_, (w, _, _))| !w.settled()).map(|(id, (w, _, _))| (w.created_at, id)).collect();
        open.sort();
        Ok(open.into_iter().take(limit.max(1)).map(|(_, id)| id.clone()).collect())
    }

    pub async fn prune(&self, limit: usize) -> Result<usize, StoreError> {
        let now = crate::task::now_ms();
        let mut st = self.state();
        let due: Vec<String> = st
            .docs
            .iter()
            .filter(|(_, (_, _, exp))| exp.is_some_and(|e| e <= now))
            .map(|(id, _)| id.clone())
            .take(limit.max(1))
            .collect();
        for id in &due {
            st.docs.remove(id);
        }
        Ok(due.len())
    }

    pub async fn lease(&self, id: &str, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = crate::task::now_ms();
        let mut st = self.state();
        if st.leases.get(id).is_some_and(|(_, until)| *until > now) {
            return Ok(false);
        }
        st.leases.insert(id.to_string(), (token.to_string(), now.saturating_add(ttl.as_millis() as u64)));
        Ok(true)
    }

    pub async fn release(&self, id: &str, token: &str) -> Result<(), StoreError> {
        let mut st = self.state();
        if st.leases.get(id).is_some_and(|(t, _)| t == token) {
            st.leases.remove(id);
        }
        Ok(())
    }

    pub async fn append_events(&self, events: &[WorkflowEvent]) -> Result<(), StoreError> {
        let max = self.opts.events_max_len.max(1);
        let mut st = self.state();
        for e in events {
            st.event_seq += 1;
            let seq = st.event_seq;
            st.events.push_back((seq, e.clone()));
        }
        while st.events.len() > max {
            st.events.pop_front();
        }
        Ok(())
    }

    pub async fn read_events(&self, after: Option<&str>, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let after = match after {
            None => 0,
            Some(a) => a
                .strip_prefix("0-")
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| StoreError::Protocol(format!("`{a}` is not an event id of this store")))?,
        };
        let st = self.state();
        Ok(st
            .events
            .iter()
            .filter(|(seq, _)| *seq > after)
            .take(limit.max(1))
            .map(|(seq, e)| StoredEvent { id: event_id(*seq), event: e.clone() })
            .collect())
    }
}
