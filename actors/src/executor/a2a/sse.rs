//! An incremental Server-Sent Events parser for `SendStreamingMessage` answers: bytes in, the `data`
//! of each complete event out.
//!
//! Hand-written rather than a crate because it must bound memory: an agent that never ends a line or
//! an event would otherwise grow the buffer without limit. Follows the WHATWG rules that matter here:
//! lines end in CRLF, LF or CR (sse-starlette sends CRLF); a blank line ends an event; `data:` lines
//! are joined with LF; lines starting with `:` are comments (the 15 s keep-alive pings); other fields
//! (`event`, `id`, `retry`) are ignored; an unfinished event at the end of the stream is dropped.

/// An event or a line grew past the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a streamed event is larger than the {limit}-byte limit")]
pub struct TooLarge {
    pub limit: usize,
}

#[derive(Debug)]
pub struct SseParser {
    /// Bytes of the line being received.
    line: Vec<u8>,
    /// The `data` of the event being received (lines joined with LF, a trailing LF).
    data: Vec<u8>,
    has_data: bool,
    /// The last line ended in CR: an LF right after it belongs to the same line break.
    after_cr: bool,
    limit: usize,
}

impl SseParser {
    /// A parser whose events (and lines) may not exceed `limit` bytes.
    pub fn new(limit: usize) -> Self {
        SseParser { line: Vec::new(), data: Vec::new(), has_data: false, after_cr: false, limit }
    }

    /// Feed the next chunk; returns the data of every event it completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<String>, TooLarge> {
        let mut events = Vec::new();
        for &b in chunk {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_done(&line)? {
                        events.push(event);
                    }
                }
                _ => {
                    if self.line.len() >= self.limit {
                        return Err(TooLarge { limit: self.limit });
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(events)
    }

    fn line_done(&mut self, line: &[u8]) -> Result<Option<String>, TooLarge> {
        if line.is_empty() {
            if !std::mem::take(&mut self.has_data) {
                return Ok(None);
            }
            let mut data = std::mem::take(&mut self.data);
            data.pop(); // the LF after the last data line
            return Ok(Some(String::from_utf8_lossy(&data).into_owned()));
        }
        if line[0] == b':' {
            return Ok(None);
        }
        let (field, value) = match line.iter().position(|&c| c == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        if field == b"data" {
            if self.data.len() + value.len() + 1 > self.limit {
                return Err(TooLarge { limit: self.limit });
            }
            self.data.extend_from_slice(value);
            self.data.push(b'\n');
            self.has_data = true;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_events_and_pings_as_sse_starlette_sends_them() {
        let mut p = SseParser::new(1024);
        let got =
            p.feed(b"data: {\"a\":1}\r\n\r\n: ping - 2026-12-01 10:13:01\r\n\r\ndata: {\"b\":2}\r\n\r\n").expect("ok");
        assert_eq!(got, vec![r#"{"a":1}"#, r#"{"b":2}"#]);
    }

    #[test]
    fn events_split_anywhere_across_chunks_come_out_whole() {
        let stream = b"data: first\r\n\r\ndata: line1\ndata:line2\n\nevent: x\rdata: third\r\r";
        for cut in 0..stream.len() {
            let mut p = SseParser::new(1024);
            let mut got = p.feed(&stream[..cut]).expect("ok");
            got.extend(p.feed(&stream[cut..]).expect("ok"));
            assert_eq!(got, vec!["first", "line1\nline2", "third"], "cut at {cut}");
        }
    }

    #[test]
    fn an_unfinished_event_is_not_emitted_and_other_fields_are_ignored() {
        let mut p = SseParser::new(1024);
        assert_eq!(p.feed(b"id: 7\nretry: 10\n\ndata: half").expect("ok"), Vec::<String>::new());
    }

    #[test]
    fn an_event_or_a_line_over_the_limit_is_refused() {
        let mut p = SseParser::new(16);
        assert_eq!(p.feed(b"data: 0123456789\ndata: 0123456789\n"), Err(TooLarge { limit: 16 }));
        let mut p = SseParser::new(16);
        assert_eq!(p.feed(&[b'x'; 64]), Err(TooLarge { limit: 16 }));
    }
}
