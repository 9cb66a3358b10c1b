//! Calendar periods in an IANA time zone: a local day, week or month converted to UTC instants.
//!
//! A local day is 23 or 25 hours long on daylight-saving changes, a month has its true length,
//! and a day whose midnight does not exist (a DST gap at 00:00) starts at the first instant that
//! does. The tz database is compiled in (jiff's bundled copy), so results do not depend on the
//! host's `/usr/share/zoneinfo`.

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

use crate::Millis;

/// Which local period a calendar window covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarPeriod {
    Day,
    Week,
    Month,
}

impl CalendarPeriod {
    pub fn parse(text: &str) -> Option<CalendarPeriod> {
        match text {
            "day" => Some(CalendarPeriod::Day),
            "week" => Some(CalendarPeriod::Week),
            "month" => Some(CalendarPeriod::Month),
            _ => None,
        }
    }

    /// An upper bound of an instance's length, in milliseconds: three hours of clock changes on
    /// top of the nominal length (the largest shift since 2000 is Antarctica/Casey's 3 hours,
    /// which made 27-hour days).
    pub fn max_length(self) -> Millis {
        const HOUR: Millis = 3_600_000;
        match self {
            CalendarPeriod::Day => 27 * HOUR,
            CalendarPeriod::Week => 7 * 24 * HOUR + 3 * HOUR,
            CalendarPeriod::Month => 31 * 24 * HOUR + 3 * HOUR,
        }
    }
}

/// A calendar window's period, zone and first day of the week.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarSpec {
    pub period: CalendarPeriod,
    /// IANA name, e.g. `Europe/Berlin`, `Australia/Sydney`, `UTC`.
    pub timezone: String,
    /// First day of a week, 0 = Monday … 6 = Sunday (only used by `week`).
    pub week_start: u8,
}

impl CalendarSpec {
    pub fn new(period: CalendarPeriod, timezone: impl Into<String>) -> Self {
        CalendarSpec {
            period,
            timezone: timezone.into(),
            week_start: 0,
        }
    }
}

/// A resolved [`CalendarSpec`]: computes period boundaries.
#[derive(Debug, Clone)]
pub struct Calendar {
    period: CalendarPeriod,
    tz: TimeZone,
    week_start: Weekday,
}

/// Every period boundary falls on a multiple of this in UTC: current and past zone offsets since
/// 2000 are whole quarter hours.
pub const BOUNDARY_GRAIN: Millis = 15 * 60 * 1000;

impl Calendar {
    /// Resolves the zone; the error says why it cannot be used.
    pub fn new(spec: &CalendarSpec) -> Result<Calendar, String> {
        let tz = TimeZone::get(&spec.timezone)
            .map_err(|_| format!("unknown IANA time zone {:?}", spec.timezone))?;
        let week_start = match spec.week_start {
            0 => Weekday::Monday,
            1 => Weekday::Tuesday,
            2 => Weekday::Wednesday,
            3 => Weekday::Thursday,
            4 => Weekday::Friday,
            5 => Weekday::Saturday,
            6 => Weekday::Sunday,
            _ => return Err("week_start must be a weekday".to_owned()),
        };
        Ok(Calendar {
            period: spec.period,
            tz,
            week_start,
        })
    }

    /// Days in UTC: a stand-in until the configured calendar is put in place.
    pub(crate) fn utc_day() -> Calendar {
        Calendar {
            period: CalendarPeriod::Day,
            tz: TimeZone::UTC,
            week_start: Weekday::Monday,
        }
    }

    fn zoned(&self, t: Millis) -> Option<Zoned> {
        Some(
            Timestamp::from_millisecond(t)
                .ok()?
                .to_zoned(self.tz.clone()),
        )
    }

    pub fn period(&self) -> CalendarPeriod {
        self.period
    }

    /// Start (UTC instant) of the local period containing `t`.
    pub fn start_of(&self, t: Millis) -> Millis {
        self.start_zoned(t)
            .map_or(t.div_euclid(BOUNDARY_GRAIN) * BOUNDARY_GRAIN, |z| {
                grain(z.timestamp().as_millisecond())
            })
    }

    fn start_zoned(&self, t: Millis) -> Option<Zoned> {
        let z = self.zoned(t)?;
        let day = z.start_of_day().ok()?;
        match self.period {
            CalendarPeriod::Day => Some(day),
            CalendarPeriod::Week => {
                let back = z.weekday().since(self.week_start);
                let date = z.date().checked_sub(i64::from(back).days()).ok()?;
                date.to_zoned(self.tz.clone()).ok()?.start_of_day().ok()
            }
            CalendarPeriod::Month => z.first_of_month().ok()?.start_of_day().ok(),
        }
    }

    /// Start of the period after the one that starts at `start` (its exclusive end).
    pub fn next_start(&self, start: Millis) -> Millis {
        let next = self.start_zoned(start).and_then(|z| {
            let date = z.date();
            let next = match self.period {
                CalendarPeriod::Day => date.checked_add(1.day()),
                CalendarPeriod::Week => date.checked_add(7.days()),
                CalendarPeriod::Month => date.checked_add(1.month()),
            }
            .ok()?;
            next.to_zoned(self.tz.clone()).ok()?.start_of_day().ok()
        });
        match next {
            Some(z) => grain(z.timestamp().as_millisecond()).max(start + BOUNDARY_GRAIN),
            None => start + self.period.max_length(),
        }
    }

    /// The zone's UTC offset at `t`, in seconds.
    pub fn offset_seconds(&self, t: Millis) -> i32 {
        Timestamp::from_millisecond(t).map_or(0, |ts| self.tz.to_offset(ts).seconds())
    }
}

/// Rounds down to the boundary grain (a no-op for every zone offset in use since 2000).
fn grain(t: Millis) -> Millis {
    t.div_euclid(BOUNDARY_GRAIN) * BOUNDARY_GRAIN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(period: CalendarPeriod, tz: &str) -> Calendar {
        Calendar::new(&CalendarSpec::new(period, tz)).expect("zone")
    }

    /// Milliseconds of an RFC 3339 instant.
    fn at(text: &str) -> Millis {
        text.parse::<Timestamp>().expect("instant").as_millisecond()
    }

    const HOUR: Millis = 3_600_000;

    #[test]
    fn berlin_dst_days_are_23_and_25_hours() {
        let c = cal(CalendarPeriod::Day, "Europe/Berlin");
        // 2026-03-29: clocks go 02:00 -> 03:00 (CET -> CEST).
        let start = c.start_of(at("2026-03-29T12:00:00Z"));
        assert_eq!(start, at("2026-03-28T23:00:00Z"));
        assert_eq!(c.next_start(start) - start, 23 * HOUR);
        assert_eq!(c.offset_seconds(start), 3600);
        assert_eq!(c.offset_seconds(c.next_start(start)), 7200);
        // 2026-10-25: 03:00 -> 02:00.
        let start = c.start_of(at("2026-10-25T12:00:00Z"));
        assert_eq!(start, at("2026-10-24T22:00:00Z"));
        assert_eq!(c.next_start(start) - start, 25 * HOUR);
    }

    #[test]
    fn sydney_dst_days_in_the_southern_hemisphere() {
        let c = cal(CalendarPeriod::Day, "Australia/Sydney");
        // 2026-04-05: AEDT (+11) -> AEST (+10) at 03:00 local: 25 hours.
        let start = c.start_of(at("2026-04-05T05:00:00Z"));
        assert_eq!(start, at("2026-04-04T13:00:00Z"));
        assert_eq!(c.next_start(start) - start, 25 * HOUR);
        // 2026-10-04: AEST -> AEDT at 02:00 local: 23 hours.
        let start = c.start_of(at("2026-10-04T05:00:00Z"));
        assert_eq!(start, at("2026-10-03T14:00:00Z"));
        assert_eq!(c.next_start(start) - start, 23 * HOUR);
    }

    #[test]
    fn midnight_in_a_dst_gap_starts_the_day_at_the_first_instant() {
        // America/Santiago skips 00:00-01:00 on the first Sunday of September (2026-09-06).
        let c = cal(CalendarPeriod::Day, "America/Santiago");
        let start = c.start_of(at("2026-09-06T12:00:00Z"));
        assert_eq!(
            start,
            at("2026-09-06T04:00:00Z"),
            "01:00 -03 is the first instant"
        );
        assert_eq!(c.next_start(start) - start, 23 * HOUR);
    }

    #[test]
    fn months_have_their_true_length_and_weeks_their_start_day() {
        let c = cal(CalendarPeriod::Month, "UTC");
        let feb = c.start_of(at("2028-02-15T00:00:00Z"));
        assert_eq!(feb, at("2028-02-01T00:00:00Z"));
        assert_eq!(c.next_start(feb), at("2028-03-01T00:00:00Z"), "leap year");
        let c = cal(CalendarPeriod::Month, "Asia/Kolkata");
        assert_eq!(
            c.start_of(at("2026-11-22T12:00:00Z")),
            at("2026-10-31T18:30:00Z")
        );
        let mut spec = CalendarSpec::new(CalendarPeriod::Week, "Asia/Kathmandu");
        spec.week_start = 6; // Sunday
        let c = Calendar::new(&spec).expect("zone");
        // Sunday 2026-11-22 00:00 +05:45.
        let sunday = at("2026-11-21T18:15:00Z");
        assert_eq!(c.start_of(at("2026-11-25T12:00:00Z")), sunday);
        assert_eq!(c.start_of(sunday), sunday);
        assert_eq!(c.next_start(sunday) - sunday, 7 * 24 * HOUR);
    }

    #[test]
    fn unknown_zone_is_refused() {
        let e = Calendar::new(&CalendarSpec::new(CalendarPeriod::Day, "Mars/Olympus"))
            .expect_err("unknown");
        assert!(e.contains("Mars/Olympus"));
    }
}
