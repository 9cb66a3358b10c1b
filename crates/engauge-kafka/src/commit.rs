//! The meaning of a committed offset in engauge, carried in the commit's metadata string.
//!
//! The committed offset is the **rebuild start**: the first offset whose partition event-time
//! progress reached the oldest time any open window instance still needs. A new owner of the
//! partition (after a restart or a rebalance) starts there and rebuilds state by re-reading.
//! The metadata says how far the previous owner had processed (`next`: messages before it are
//! replay, neither counted again nor dead-lettered again) and up to which watermark it had
//! published snapshots (`published`: instances ending at or before it are not published again).

/// One partition's commit point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitPoint {
    /// Where a new owner starts reading (the committed offset).
    pub rebuild_from: i64,
    /// First offset not yet processed.
    pub next: i64,
    /// Watermark up to which snapshots were published, milliseconds; `None` if none yet.
    pub published: Option<i64>,
}

const VERSION: &str = "engauge1";

impl CommitPoint {
    /// The metadata string: `engauge1;next=<offset>;published=<millis|->`.
    pub fn metadata(&self) -> String {
        let published = self
            .published
            .map_or_else(|| "-".to_owned(), |p| p.to_string());
        format!("{VERSION};next={};published={published}", self.next)
    }

    /// Reads a committed offset and its metadata; `None` if the metadata is not engauge's.
    pub fn parse(offset: i64, metadata: &str) -> Option<CommitPoint> {
        let mut parts = metadata.split(';');
        if parts.next()? != VERSION {
            return None;
        }
        let next = parts.next()?.strip_prefix("next=")?.parse().ok()?;
        let published = match parts.next()?.strip_prefix("published=")? {
            "-" => None,
            p => Some(p.parse().ok()?),
        };
        Some(CommitPoint {
            rebuild_from: offset,
            next,
            published,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for p in [
            CommitPoint {
                rebuild_from: 5,
                next: 90,
                published: Some(1_767_225_600_000),
            },
            CommitPoint {
                rebuild_from: 0,
                next: 0,
                published: None,
            },
        ] {
            assert_eq!(CommitPoint::parse(p.rebuild_from, &p.metadata()), Some(p));
        }
        assert_eq!(CommitPoint::parse(3, ""), None);
        assert_eq!(CommitPoint::parse(3, "engauge1;next=x;published=-"), None);
    }
}
