//! HTML pages and JSON error bodies shown to people, shared by proxy and authenticate.
//! Every dynamic value is escaped; no page shows a token, cookie or secret.

/// Escape text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A complete page. `body` must already be escaped HTML.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{t}</title><style>body{{font-family:system-ui,sans-serif;max-width:40rem;\
         margin:4rem auto;padding:0 1rem;color:#222}}h1{{font-size:1.4rem}}\
         code{{background:#f3f3f3;padding:0 .2rem}}dt{{font-weight:600}}\
         button{{font-size:1rem;padding:.4rem 1rem}}</style></head>\
         <body><h1>{t}</h1>{body}<p><small>Portcullis</small></p></body></html>\n",
        t = escape(title),
    )
}

/// A request's id: 9 random bytes, base64url (12 characters). Kept inline, so giving each
/// request one allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId([u8; 12]);

impl RequestId {
    pub fn random() -> RequestId {
        use base64::Engine;
        use rand::RngCore;
        let mut bytes = [0u8; 9];
        rand::thread_rng().fill_bytes(&mut bytes);
        let mut text = [0u8; 12];
        // 9 bytes are exactly 12 characters, so this cannot fail.
        let written = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_slice(bytes, &mut text);
        debug_assert_eq!(written.ok(), Some(12));
        RequestId(text)
    }

    pub fn as_str(&self) -> &str {
        // base64url output is ASCII.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

tokio::task_local! {
    /// The id of the request being answered (set by the proxy for each request).
    pub static REQUEST_ID: RequestId;
}

/// The current request's id, if one is set.
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(|id| id.as_str().to_owned()).ok()
}

/// An error page: status, a sentence for people, and machine reasons.
pub fn error_page(status: u16, title: &str, message: &str, reasons: &[String]) -> String {
    let mut body = format!("<p>{}</p>", escape(message));
    if !reasons.is_empty() {
        body.push_str("<p>Reason: ");
        body.push_str(
            &reasons.iter().map(|r| format!("<code>{}</code>", escape(r))).collect::<Vec<_>>().join(", "),
        );
        body.push_str("</p>");
    }
    let id = request_id().map(|id| format!(" Request id <code>{}</code>.", escape(&id))).unwrap_or_default();
    body.push_str(&format!("<p>Status {status}.{id} <a href=\"/.portcullis/\">Your session</a></p>"));
    page(title, &body)
}

/// The JSON body of an error for API clients; `error` is the title as a snake_case code
/// (`Service unavailable` → `service_unavailable`).
pub fn error_json(status: u16, title: &str, message: &str, reasons: &[String]) -> String {
    let code: String =
        title.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let mut body =
        serde_json::json!({ "status": status, "error": code, "message": message, "reasons": reasons });
    if let Some(id) = request_id() {
        body["request_id"] = id.into();
    }
    body.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert!(!error_page(403, "<t>", "<m>", &["<r>".into()]).contains("<m>"));
    }
}
