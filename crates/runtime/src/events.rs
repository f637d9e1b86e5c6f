//! CloudEvents 1.0 envelopes for [`EventData`] (structured JSON mode of the NATS binding).

use chrono::Utc;
use cloudevents::{EventBuilder, EventBuilderV10};
use portcullis_schemas::events::EventData;

use crate::crypto::random_token;

/// Build the structured-mode JSON of an event; returns (event id, body).
pub fn structured<E: EventData>(source: &str, data: &E) -> Result<(String, Vec<u8>), String> {
    let id = random_token(16);
    let json = serde_json::to_value(data).map_err(|e| e.to_string())?;
    let event = EventBuilderV10::new()
        .id(id.clone())
        .source(source.to_owned())
        .ty(E::TYPE)
        .subject(data.subject().to_owned())
        .time(Utc::now())
        .data("application/json", json)
        .build()
        .map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
    Ok((id, body))
}
