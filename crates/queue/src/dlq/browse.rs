//! Finding dead letters: one by its id ([`get`]), or a filtered page at a time across
//! partitions ([`page`], [`Filter`], [`Cursor`]), newest first.
//!
//! Newest first, because an operator looks at what broke last: after a deploy or an outage
//! the letters that matter are on the first page. The order is the letters' stream ids
//! (their time of death to the millisecond), then queue name and partition, all
//! descending; a [`Cursor`] is the position of the last letter of a page, and the next page
//! starts strictly after it. So paging is stable while the queues change under it: a letter
//! that arrives meanwhile is newer and never shows up mid-way, one re-driven or deleted
//! meanwhile just drops out, and no letter is shown twice or skipped.
//!
//! Redis cannot filter stream entries, so each partition is read newest first in batches
//! (`XREVRANGE … COUNT`) and filtered here; the time filters become the range's bounds.
//! A page merges the partitions' matches by position, reading only as far as it needs.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use base64::Engine;

use super::letter::{Letter, LetterId, parse_stream_id};
use crate::conn::RedisConn;
use crate::keys::{Place, QueueKeys};

/// Raw entries read from a partition per round trip.
const SCAN_BATCH: usize = 200;

/// Which letters: every condition given must hold. The default matches every letter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Reason codes, any of them (empty: any reason).
    pub reasons: Vec<String>,
    /// Dead-lettered at or after this time, Unix ms (the letter's id).
    pub since_ms: Option<u64>,
    /// Dead-lettered before this time, Unix ms.
    pub until_ms: Option<u64>,
    /// Text found, ignoring case, in the detail, an error of the history or the payload.
    /// Searched as shown, after masking: a search for a card number finds nothing, so the
    /// search cannot tell whether a letter held one.
    pub text: Option<String>,
}

impl Filter {
    /// Whether `letter` passes.
    pub fn matches(&self, letter: &Letter) -> bool {
        let at = letter.id.at().0;
        (self.reasons.is_empty() || self.reasons.contains(&letter.reason))
            && self.since_ms.is_none_or(|s| at >= s)
            && self.until_ms.is_none_or(|u| at < u)
            && self.text.as_deref().is_none_or(|t| contains(letter, t))
    }
}

fn contains(letter: &Letter, text: &str) -> bool {
    let needle = text.to_lowercase();
    let has = |hay: &str| hay.to_lowercase().contains(&needle);
    has(&letter.detail)
        || letter.errors.iter().any(|e| has(&e.error))
        || letter.payload.as_deref().is_some_and(has)
}

/// `newest` lowered to `bound`; `None` (nothing to read) stays so.
fn cap(newest: Option<(u64, u64)>, bound: Option<(u64, u64)>) -> Option<(u64, u64)> {
    Some(newest?.min(bound?))
}

/// A stream id as a range bound: `+` and `-` for the ends.
fn bound(id: (u64, u64)) -> String {
    match id {
        (u64::MAX, u64::MAX) => "+".to_owned(),
        (0, 0) => "-".to_owned(),
        (ms, seq) => format!("{ms}-{seq}"),
    }
}

/// The stream id just before `id`, if there is one.
fn before(id: (u64, u64)) -> Option<(u64, u64)> {
    match id {
        (0, 0) => None,
        (ms, 0) => Some((ms - 1, u64::MAX)),
        (ms, seq) => Some((ms, seq - 1)),
    }
}

/// Where a page ended: the next page starts strictly after this letter. Opaque to
/// callers (its text may change between versions); valid with the same filter and the
/// same queues, and whatever happened to the letters since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    at: (u64, u64),
    queue: String,
    partition: Place,
}

/// Why a text is not a [`Cursor`].
#[derive(Debug, thiserror::Error)]
#[error("not a cursor from this version's listing (pass next_cursor as it was printed)")]
pub struct CursorError;

const CURSOR_VERSION: &str = "c1";

impl Cursor {
    fn of(letter: &Letter) -> Self {
        Cursor {
            at: letter.id.at(),
            queue: letter.queue.clone(),
            partition: letter.id.place().clone(),
        }
    }

    /// The newest stream id `keys`' partition may show after this cursor: the letters
    /// of the cursor's id itself come first in partitions ordered above it.
    fn newest_in(&self, keys: &QueueKeys) -> Option<(u64, u64)> {
        if (keys.queue.as_str(), &keys.place()) < (self.queue.as_str(), &self.partition) {
            Some(self.at)
        } else {
            before(self.at)
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = format!(
            "{CURSOR_VERSION}|{}-{}|{}|{}",
            self.at.0, self.at.1, self.partition, self.queue
        );
        f.write_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(plain))
    }
}

impl FromStr for Cursor {
    type Err = CursorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let plain = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| CursorError)?;
        let plain = String::from_utf8(plain).map_err(|_| CursorError)?;
        let mut parts = plain.splitn(4, '|');
        let mut next = || parts.next().ok_or(CursorError);
        (next()? == CURSOR_VERSION)
            .then_some(())
            .ok_or(CursorError)?;
        let at = parse_stream_id(next()?).ok_or(CursorError)?;
        let partition = next()?.parse().map_err(|_| CursorError)?;
        let queue = next()?.to_owned();
        Ok(Cursor {
            at,
            queue,
            partition,
        })
    }
}

/// One page of letters and where the next one starts (`None`: this was the last).
#[derive(Debug, Clone)]
pub struct Page {
    /// Letters, newest first.
    pub letters: Vec<Letter>,
    /// Pass it back for the next page.
    pub next: Option<Cursor>,
}

/// One partition being read newest first.
struct Source<'a> {
    keys: &'a QueueKeys,
    /// The newest id not yet read; `None` once the partition is read to its oldest.
    newest: Option<(u64, u64)>,
    /// The oldest id the filter allows.
    oldest: (u64, u64),
    /// Matches read and not yet taken, newest first.
    ready: VecDeque<Letter>,
}

impl Source<'_> {
    /// Reads until a match is ready or the partition is read.
    async fn fill(&mut self, conn: &mut RedisConn, filter: &Filter) -> redis::RedisResult<()> {
        while self.ready.is_empty() {
            let Some(newest) = self.newest.filter(|n| *n >= self.oldest) else {
                self.newest = None;
                return Ok(());
            };
            let reply: redis::Value = redis::cmd("XREVRANGE")
                .arg(&self.keys.dlq)
                .arg(bound(newest))
                .arg(bound(self.oldest))
                .arg("COUNT")
                .arg(SCAN_BATCH)
                .query_async(conn)
                .await?;
            let entries = crate::reply::entries(reply);
            let full = entries.len() == SCAN_BATCH;
            self.newest = None;
            for (id, fields) in entries {
                let Some(at) = parse_stream_id(&id) else {
                    continue;
                };
                self.newest = if full { before(at) } else { None };
                let letter = Letter::from_fields(self.keys, at, fields);
                if filter.matches(&letter) {
                    self.ready.push_back(letter);
                }
            }
        }
        Ok(())
    }

    fn head_position(&self) -> Option<((u64, u64), &str, &Place)> {
        self.ready
            .front()
            .map(|l| (l.id.at(), l.queue.as_str(), l.id.place()))
    }
}

/// The letters of several partitions (of one queue or several) that pass a filter, newest
/// first, from a position on: what [`page`] and the bulk actions walk.
pub(crate) struct Scan<'a> {
    sources: Vec<Source<'a>>,
    filter: &'a Filter,
}

impl<'a> Scan<'a> {
    pub(crate) fn new(
        partitions: &'a [QueueKeys],
        filter: &'a Filter,
        after: Option<&Cursor>,
    ) -> Self {
        let oldest = (filter.since_ms.unwrap_or(0), 0);
        let sources = partitions
            .iter()
            .map(|keys| {
                let mut newest = Some((u64::MAX, u64::MAX));
                if let Some(until) = filter.until_ms {
                    newest = cap(newest, before((until, 0)));
                }
                if let Some(cursor) = after {
                    newest = cap(newest, cursor.newest_in(keys));
                }
                Source {
                    keys,
                    newest,
                    oldest,
                    ready: VecDeque::new(),
                }
            })
            .collect();
        Scan { sources, filter }
    }

    /// The next letter, or `None` when every partition is read.
    pub(crate) async fn next(
        &mut self,
        conn: &mut RedisConn,
    ) -> redis::RedisResult<Option<Letter>> {
        for source in &mut self.sources {
            source.fill(conn, self.filter).await?;
        }
        let best = self
            .sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.head_position().map(|p| (p, i)))
            .max()
            .map(|(_, i)| i);
        Ok(best.and_then(|i| self.sources[i].ready.pop_front()))
    }

    /// Whether another letter would come.
    async fn more(&mut self, conn: &mut RedisConn) -> redis::RedisResult<bool> {
        for source in &mut self.sources {
            source.fill(conn, self.filter).await?;
        }
        Ok(self.sources.iter().any(|s| !s.ready.is_empty()))
    }
}

/// Up to `limit` letters of `partitions` that pass `filter`, newest first, starting after
/// `after` (from the newest when `None`).
pub async fn page(
    conn: &mut RedisConn,
    partitions: &[QueueKeys],
    filter: &Filter,
    after: Option<&Cursor>,
    limit: usize,
) -> redis::RedisResult<Page> {
    let mut scan = Scan::new(partitions, filter, after);
    let mut letters = Vec::new();
    while letters.len() < limit {
        match scan.next(conn).await? {
            Some(letter) => letters.push(letter),
            None => break,
        }
    }
    let next = match letters.last() {
        Some(last) if letters.len() == limit && scan.more(conn).await? => Some(Cursor::of(last)),
        _ => None,
    };
    Ok(Page { letters, next })
}

/// How many letters of `partitions` pass `filter`.
pub async fn count(
    conn: &mut RedisConn,
    partitions: &[QueueKeys],
    filter: &Filter,
) -> redis::RedisResult<u64> {
    let mut scan = Scan::new(partitions, filter, None);
    let mut n = 0;
    while scan.next(conn).await?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// One letter of `partitions` by its id, or `None` if there is no such letter (or no such
/// partition).
pub async fn get(
    conn: &mut RedisConn,
    partitions: &[QueueKeys],
    id: &LetterId,
) -> redis::RedisResult<Option<Letter>> {
    let Some(keys) = partitions.iter().find(|k| id.is_on(k)) else {
        return Ok(None);
    };
    let reply: redis::Value = redis::cmd("XRANGE")
        .arg(&keys.dlq)
        .arg(id.entry())
        .arg(id.entry())
        .query_async(conn)
        .await?;
    Ok(crate::reply::entries(reply)
        .into_iter()
        .next()
        .map(|(_, fields)| Letter::from_fields(keys, id.at(), fields)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_itself_and_nothing_else_reads_as_one() {
        let c = Cursor {
            at: (1_764_062_341_003, 2),
            queue: "create_payment".into(),
            partition: 3.into(),
        };
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        for bad in ["", "x", "0/1-0", "YzF8MS0wfDA"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_next_page_starts_right_after_the_cursor_in_every_partition() {
        let c = Cursor {
            at: (10, 0),
            queue: "q".into(),
            partition: 1.into(),
        };
        let keys = |p| QueueKeys::new("x", "q", p);
        assert_eq!(c.newest_in(&keys(0)), Some((10, 0)), "ordered after it");
        assert_eq!(c.newest_in(&keys(1)), Some((9, u64::MAX)));
        assert_eq!(c.newest_in(&keys(2)), Some((9, u64::MAX)));
        assert_eq!(before((0, 0)), None);
    }
}
