//! A consumer's reader: its own connection, because a blocking `XREADGROUP` holds the connection for
//! the whole wait.

use super::args::ReadPendingArgs;
use super::scripts::Scripts;
use super::{ensure_group, reply};
use crate::bus::types::{BusError, Delivery};
use crate::bus::{keys, GROUP};
use crate::connection::Conn;
use crate::task::TopicName;
use redis::Value;
use std::sync::Arc;
use std::time::Duration;

/// One consumer's reader with its own connection.
pub struct RedisReader {
    pub(super) conn: Conn,
    pub(super) consumer: String,
    pub(super) scripts: Arc<Scripts>,
}

impl RedisReader {
    pub async fn read_new(
        &mut self,
        topic: &TopicName,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(GROUP).arg(&self.consumer).arg("COUNT").arg(count.max(1));
        // `BLOCK 0` would wait forever: a zero wait means "do not block", as on the memory bus.
        if !block.is_zero() {
            cmd.arg("BLOCK").arg((block.as_millis() as u64).max(1));
        }
        let r: redis::RedisResult<Value> =
            cmd.arg("STREAMS").arg(keys::stream(topic)).arg(">").query_async(&mut self.conn).await;
        let v = match r {
            Ok(v) => v,
            Err(e) if crate::connection::classify(&e) == crate::connection::ErrorClass::StateLost => {
                // The stream or group vanished (e.g. Redis restarted without persistence): recreate it.
                ensure_group(&mut self.conn, topic).await?;
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.into()),
        };
        Ok(reply::read_reply(v)
            .into_iter()
            .map(|(id, fields)| Delivery {
                topic: topic.clone(),
                entry_id: id,
                raw: reply::envelope(fields),
                deliveries: 1,
            })
            .collect())
    }

    pub async fn read_pending(
        &mut self,
        topic: &TopicName,
        after: &str,
        count: usize,
    ) -> Result<Vec<Delivery>, BusError> {
        let args = ReadPendingArgs { topic, consumer: &self.consumer, after, count: count.max(1) };
        let r: redis::RedisResult<Value> = self.scripts.read_pending.call(&args).invoke_async(&mut self.conn).await;
        let v = match r {
            Ok(v) => v,
            Err(e) if crate::connection::classify(&e) == crate::connection::ErrorClass::StateLost => {
                ensure_group(&mut self.conn, topic).await?;
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.into()),
        };
        Ok(reply::id_count_fields(v)?
            .into_iter()
            .map(|(id, n, raw)| Delivery { topic: topic.clone(), entry_id: id, raw, deliveries: n })
            .collect())
    }
}
