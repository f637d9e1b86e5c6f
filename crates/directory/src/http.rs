//! The HTTP side shared by the API providers: a request-rate limit, `429`/`503` answered by
//! waiting what `Retry-After` (or the vendor's reset header) says, errors that name the
//! endpoint without its query or any credential, and `Link: rel="next"` paging.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use crate::{Progress, ProviderError};

/// Attempts of one request while the provider answers 429 or 503.
const MAX_ATTEMPTS: u32 = 6;
/// The longest single wait a provider may ask for.
const MAX_WAIT: Duration = Duration::from_secs(120);
/// Wait when a 429/503 names no time.
const DEFAULT_WAIT: Duration = Duration::from_secs(1);
/// Error bodies are cut to this many characters in messages.
const DETAIL_CHARS: usize = 200;

/// An HTTP client for one provider's API.
pub struct Api {
    http: reqwest::Client,
    /// Time between two requests; `None` = no limit.
    interval: Option<Duration>,
    next_slot: Mutex<Instant>,
}

impl Api {
    /// `requests_per_second`: `None` for no limit. `timeout` bounds each request.
    pub fn new(requests_per_second: Option<f64>, timeout: Duration) -> Result<Api, ProviderError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("portcullis-directory/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        let interval = requests_per_second.map(|r| Duration::from_secs_f64(1.0 / r));
        Ok(Api { http, interval, next_slot: Mutex::new(Instant::now()) })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.http
    }

    /// Wait for the next request slot.
    async fn slot(&self) {
        let Some(interval) = self.interval else { return };
        let at = {
            let mut next = self.next_slot.lock().await;
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }

    /// Send `request` (rate limited), retrying while the provider answers 429 or 503; any
    /// other non-success status is an error.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, ProviderError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(this) = request.try_clone() else {
                return Err(ProviderError::Invalid("request cannot be retried".into()));
            };
            let (client, built) = this.build_split();
            let built = built.map_err(|e| ProviderError::Invalid(format!("bad request: {e}")))?;
            let what = endpoint(built.url());
            self.slot().await;
            let response = client
                .execute(built)
                .await
                .map_err(|e| ProviderError::Unreachable { what: what.clone(), message: plain(e) })?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
                if attempt >= MAX_ATTEMPTS {
                    return Err(ProviderError::RateLimited { what, attempts: attempt });
                }
                let wait = retry_wait(response.headers(), SystemTime::now()).unwrap_or(DEFAULT_WAIT);
                tracing::info!(endpoint = %what, status = status.as_u16(), wait_ms = wait.as_millis() as u64, "provider asks to slow down; waiting");
                tokio::time::sleep(wait.min(MAX_WAIT)).await;
                continue;
            }
            // GitHub answers 403 with x-ratelimit-remaining: 0 when the budget is spent, and
            // with Retry-After for its secondary limits.
            let headers = response.headers();
            if status == StatusCode::FORBIDDEN
                && (headers.get("x-ratelimit-remaining").is_some_and(|v| v == "0")
                    || headers.contains_key(RETRY_AFTER))
                && attempt < MAX_ATTEMPTS
            {
                let wait = retry_wait(response.headers(), SystemTime::now()).unwrap_or(DEFAULT_WAIT);
                tokio::time::sleep(wait.min(MAX_WAIT)).await;
                continue;
            }
            let detail = detail(response).await;
            if status == StatusCode::UNAUTHORIZED {
                return Err(ProviderError::Auth(format!("{what} answered 401: {detail}")));
            }
            return Err(ProviderError::Status { what, status: status.as_u16(), detail });
        }
    }

    /// Send and decode a JSON body; also returns the headers (for paging).
    pub async fn json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<(T, HeaderMap), ProviderError> {
        let response = self.send(request).await?;
        let what = endpoint(response.url());
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ProviderError::Unreachable { what: what.clone(), message: plain(e) })?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| ProviderError::Decode { what, message: e.to_string() })?;
        Ok((value, headers))
    }

    /// GET `url` with `auth` applied, decoding JSON.
    pub async fn get<T: DeserializeOwned>(
        &self,
        url: Url,
        bearer: &str,
    ) -> Result<(T, HeaderMap), ProviderError> {
        self.json(self.http.get(url).bearer_auth(bearer).header("accept", "application/json")).await
    }

    /// Every item of a listing paged by `Link: rel="next"` (or another header `follow`
    /// reads), from `first`; `request` builds each page's request with the credentials.
    pub async fn link_paged<T: DeserializeOwned>(
        &self,
        first: Url,
        request: impl Fn(Url) -> RequestBuilder,
        follow: impl Fn(&HeaderMap, &Url) -> Result<Option<Url>, ProviderError>,
        what: &str,
        progress: &Progress,
    ) -> Result<Vec<T>, ProviderError> {
        let mut all = Vec::new();
        let mut next = Some(first);
        let mut pages = 0usize;
        while let Some(url) = next.take() {
            let (page, headers): (Vec<T>, _) = self.json(request(url.clone())).await?;
            all.extend(page);
            progress.read(what, all.len());
            next = follow(&headers, &url)?;
            pages += 1;
            if pages > MAX_PAGES {
                return Err(ProviderError::Invalid(format!("{} never stops paging", endpoint(&url))));
            }
        }
        Ok(all)
    }
}

/// A listing with more pages than this is taken for a server that never stops paging.
pub const MAX_PAGES: usize = 100_000;

/// The `Link: rel="next"` page, if it stays on the host `current` is on: credentials go with
/// every request, so a link elsewhere is refused rather than followed.
pub fn next_on_same_host(headers: &HeaderMap, current: &Url) -> Result<Option<Url>, ProviderError> {
    same_origin(next_link(headers, current), current)
}

/// `next`, if it is on the host `current` is on (see [`next_on_same_host`]).
pub fn same_origin(next: Option<Url>, current: &Url) -> Result<Option<Url>, ProviderError> {
    match next {
        Some(n) if n.origin() != current.origin() => Err(ProviderError::Invalid(format!(
            "{} links its next page to another host ({}); not following it",
            endpoint(current),
            n.host_str().unwrap_or("?")
        ))),
        next => Ok(next),
    }
}

/// `https://host/path` of `url`, without query (page tokens, filters) or credentials.
pub fn endpoint(url: &Url) -> String {
    format!("{}://{}{}", url.scheme(), url.host_str().unwrap_or("?"), url.path())
}

/// An error's text without the URL's query.
fn plain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The start of an error body, on one line, for the log and the `sync_failed` event.
async fn detail(response: Response) -> String {
    let text = response.text().await.unwrap_or_default();
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut cut: String = one_line.chars().take(DETAIL_CHARS).collect();
    if one_line.chars().count() > DETAIL_CHARS {
        cut.push('…');
    }
    if cut.is_empty() { "(no body)".into() } else { cut }
}

/// How long a 429/503 asks to wait: `Retry-After` (seconds or an HTTP date), else the
/// epoch-seconds reset headers of Okta (`X-Rate-Limit-Reset`) and GitHub
/// (`X-RateLimit-Reset`).
pub fn retry_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(v) = headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = httpdate::parse_http_date(v) {
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    for name in ["x-rate-limit-reset", "x-ratelimit-reset"] {
        if let Some(reset) = headers.get(name).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok()) {
            // A reset time beyond what SystemTime holds waits the longest allowed wait.
            let Some(at) = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(reset)) else {
                return Some(MAX_WAIT);
            };
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    None
}

/// The `rel="next"` target of a `Link` header (RFC 8288), resolved against `base`.
pub fn next_link(headers: &HeaderMap, base: &Url) -> Option<Url> {
    for value in headers.get_all("link") {
        let Ok(value) = value.to_str() else { continue };
        for part in value.split(',') {
            let mut pieces = part.split(';');
            let Some(target) = pieces.next().map(str::trim) else { continue };
            let is_next = pieces.any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next && target.starts_with('<') && target.ends_with('>') {
                return base.join(&target[1..target.len() - 1]).ok();
            }
        }
    }
    None
}

/// `url` with `path` segments appended (each one percent-encoded).
pub fn join(url: &Url, segments: &[&str]) -> Url {
    let mut u = url.clone();
    if let Ok(mut s) = u.path_segments_mut() {
        s.pop_if_empty();
        s.extend(segments);
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_in_each_form() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_wait(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(now + Duration::from_secs(30))).unwrap(),
        );
        assert_eq!(retry_wait(&h, now), Some(Duration::from_secs(30)));
        let mut h = HeaderMap::new();
        h.insert("x-rate-limit-reset", HeaderValue::from_static("1700000005"));
        assert_eq!(retry_wait(&h, now), Some(Duration::from_secs(5)));
        assert_eq!(retry_wait(&HeaderMap::new(), now), None);
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", HeaderValue::from_static("18446744073709551615"));
        assert_eq!(retry_wait(&h, now), Some(MAX_WAIT), "a reset beyond any date waits the longest allowed");
    }

    #[test]
    fn link_next_is_found_among_others() {
        let base = Url::parse("https://api.example.com/orgs/x/teams?page=1").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            HeaderValue::from_static(
                "<https://api.example.com/orgs/x/teams?page=1>; rel=\"prev\", </orgs/x/teams?page=3>; rel=\"next\"",
            ),
        );
        assert_eq!(next_link(&h, &base).unwrap().as_str(), "https://api.example.com/orgs/x/teams?page=3");
        assert_eq!(next_link(&HeaderMap::new(), &base), None);
    }

    #[test]
    fn endpoints_hide_queries_and_credentials() {
        let u = Url::parse("https://user:pw@example.com/a/b?token=secret").unwrap();
        assert_eq!(endpoint(&u), "https://example.com/a/b");
        assert_eq!(
            join(&Url::parse("https://x/scim/v2/").unwrap(), &["Users"]).as_str(),
            "https://x/scim/v2/Users"
        );
    }
}
