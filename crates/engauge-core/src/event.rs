//! The event model the engine consumes: already decoded and validated by a codec.

use std::borrow::Cow;

use smallvec::SmallVec;

use crate::Millis;

/// One validated input event. Strings borrow from the input buffer where the codec could.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    /// Unique event id, the dedup key.
    pub id: Cow<'a, str>,
    /// The event's `type` as sent (unknown types are plain activity).
    pub event_type: Cow<'a, str>,
    pub user_id: Cow<'a, str>,
    pub ts: Millis,
    pub session_id: Option<Cow<'a, str>>,
    /// Segment dimensions, in input order; keys are unique.
    pub attrs: SmallVec<[(Cow<'a, str>, Cow<'a, str>); 4]>,
    pub kind: EventKind<'a>,
}

/// What an event means beyond being activity.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind<'a> {
    /// `page_view`, `screen_view`, `action`, and any unknown type.
    Plain,
    FeatureUsed {
        feature: Cow<'a, str>,
    },
    SurveyResponse {
        survey: Survey,
        score: i32,
    },
    /// Amount in the base currency (converted by the codec).
    Purchase {
        amount: f64,
    },
    /// Amount in the base currency (converted by the codec), positive.
    Refund {
        amount: f64,
    },
    SubscriptionCancelled,
    SupportTicket,
    SelfServiceResolved,
}

/// The three survey kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Survey {
    Nps,
    Csat,
    Ces,
}

impl Survey {
    pub const ALL: [Survey; 3] = [Survey::Nps, Survey::Csat, Survey::Ces];

    pub fn as_str(self) -> &'static str {
        match self {
            Survey::Nps => "nps",
            Survey::Csat => "csat",
            Survey::Ces => "ces",
        }
    }

    pub fn parse(text: &str) -> Option<Survey> {
        match text {
            "nps" => Some(Survey::Nps),
            "csat" => Some(Survey::Csat),
            "ces" => Some(Survey::Ces),
            _ => None,
        }
    }
}

impl Event<'_> {
    /// Converts every borrowed string into an owned one.
    pub fn into_owned(self) -> Event<'static> {
        fn own(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        Event {
            id: own(self.id),
            event_type: own(self.event_type),
            user_id: own(self.user_id),
            ts: self.ts,
            session_id: self.session_id.map(own),
            attrs: self
                .attrs
                .into_iter()
                .map(|(k, v)| (own(k), own(v)))
                .collect(),
            kind: match self.kind {
                EventKind::Plain => EventKind::Plain,
                EventKind::FeatureUsed { feature } => EventKind::FeatureUsed {
                    feature: own(feature),
                },
                EventKind::SurveyResponse { survey, score } => {
                    EventKind::SurveyResponse { survey, score }
                }
                EventKind::Purchase { amount } => EventKind::Purchase { amount },
                EventKind::Refund { amount } => EventKind::Refund { amount },
                EventKind::SubscriptionCancelled => EventKind::SubscriptionCancelled,
                EventKind::SupportTicket => EventKind::SupportTicket,
                EventKind::SelfServiceResolved => EventKind::SelfServiceResolved,
            },
        }
    }

    /// The value of attribute `key`, if the event carries it.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }
}
