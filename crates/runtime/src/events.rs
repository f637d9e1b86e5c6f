//! CloudEvents 1.0 envelopes for [`EventData`], in the structured or binary content mode of
//! the CloudEvents NATS protocol binding.

use chrono::Utc;
use cloudevents::{EventBuilder, EventBuilderV10};
use portcullis_schemas::events::{EventData, STRUCTURED_CONTENT_TYPE};

use crate::config::EventMode;

use crate::crypto::random_token;

/// An event ready to publish: its id, NATS headers and body.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub id: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Build the envelope of `data` in `mode`: structured (the whole event as
/// `application/cloudevents+json`) or binary (`ce-` headers, the data as the body), per the
/// CloudEvents NATS protocol binding.
pub fn envelope<E: EventData>(source: &str, data: &E, mode: EventMode) -> Result<Envelope, String> {
    let id = random_token(16);
    let json = serde_json::to_value(data).map_err(|e| e.to_string())?;
    let time = Utc::now();
    match mode {
        EventMode::Structured => {
            let event = EventBuilderV10::new()
                .id(id.clone())
                .source(source.to_owned())
                .ty(E::TYPE)
                .subject(data.subject().to_owned())
                .time(time)
                .data("application/json", json)
                .build()
                .map_err(|e| e.to_string())?;
            let body = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
            let headers = vec![("Content-Type".to_owned(), STRUCTURED_CONTENT_TYPE.to_owned())];
            Ok(Envelope { id, headers, body })
        }
        EventMode::Binary => {
            let headers = vec![
                ("ce-specversion".to_owned(), "1.0".to_owned()),
                ("ce-id".to_owned(), id.clone()),
                ("ce-source".to_owned(), source.to_owned()),
                ("ce-type".to_owned(), E::TYPE.to_owned()),
                ("ce-subject".to_owned(), data.subject().to_owned()),
                ("ce-time".to_owned(), time.to_rfc3339()),
                ("Content-Type".to_owned(), "application/json".to_owned()),
            ];
            let body = serde_json::to_vec(&json).map_err(|e| e.to_string())?;
            Ok(Envelope { id, headers, body })
        }
    }
}

/// One stored event as structured CloudEvents JSON: structured messages as they are, binary
/// ones rebuilt from their `ce-` headers and body.
pub fn to_structured_json(
    headers: Option<Vec<(String, String)>>,
    body: &[u8],
) -> Result<serde_json::Value, String> {
    let headers = headers.unwrap_or_default();
    let ce: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(k, v)| k.to_ascii_lowercase().starts_with("ce-").then_some((&k[3..], v.as_str())))
        .collect();
    if ce.is_empty() {
        return serde_json::from_slice(body).map_err(|e| e.to_string());
    }
    let mut event = serde_json::Map::new();
    for (k, v) in ce {
        event.insert(k.to_ascii_lowercase(), serde_json::Value::String(v.to_owned()));
    }
    let content_type =
        headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.clone());
    event.insert("datacontenttype".into(), content_type.unwrap_or_else(|| "application/json".into()).into());
    let data: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    event.insert("data".into(), data);
    Ok(serde_json::Value::Object(event))
}

#[cfg(test)]
mod tests {
    use portcullis_schemas::events::{EventData, SessionExpired};

    use super::*;

    fn sample() -> SessionExpired {
        SessionExpired {
            session_id: "s1".into(),
            user_id: "u1".into(),
            email: Some("a@example.com".into()),
            idp: "https://idp".into(),
            expired_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn both_modes_carry_the_same_event() {
        let s = envelope("/portcullis/cache", &sample(), EventMode::Structured).expect("structured");
        let b = envelope("/portcullis/cache", &sample(), EventMode::Binary).expect("binary");
        let s = to_structured_json(Some(s.headers), &s.body).expect("decode structured");
        let b = to_structured_json(Some(b.headers), &b.body).expect("decode binary");
        for v in [&s, &b] {
            assert_eq!(v["type"], SessionExpired::TYPE);
            assert_eq!(v["subject"], "s1");
            assert_eq!(v["specversion"], "1.0");
            assert_eq!(v["source"], "/portcullis/cache");
            assert_eq!(v["data"]["email"], "a@example.com");
        }
    }
}
