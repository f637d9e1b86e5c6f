//! The session cookie on route hosts: the session id, sealed with a key from
//! `cookie_secret` and bound to the cookie name.

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use portcullis_runtime::config::CookieConfig;
use portcullis_runtime::crypto::Sealer;

/// The session id in the request's session cookie, if one opens.
pub fn session_id(headers: &HeaderMap, sealer: &Sealer, name: &str) -> Option<String> {
    cookie_values(headers, name).find_map(|v| open(sealer, v, name))
}

fn open(sealer: &Sealer, value: &str, name: &str) -> Option<String> {
    sealer.open(value, name.as_bytes()).ok().and_then(|b| String::from_utf8(b).ok())
}

/// What the last `Cookie` header on one client connection gave: a client sends the same one
/// with every request, and opening the session cookie in it (base64, then an AEAD) costs more
/// than the rest of the proxy's own work on an authorized request. Finding the session
/// cookie, and the header the upstream gets without it, are functions of the header alone for
/// a given sealer and name (no expiry is sealed in), so the remembered answers are the ones
/// working them out again would give.
#[derive(Default)]
pub struct Opened(std::sync::Mutex<Option<Remembered>>);

struct Remembered {
    /// A copy of the header, not a slice of the request: a slice would keep the server's whole
    /// read buffer alive, so that the buffer is allocated again for every request.
    header: HeaderValue,
    session_id: Option<String>,
    /// The header as forwarded (see [`without`]), once it was asked for.
    forwarded: Option<Option<HeaderValue>>,
}

impl Opened {
    /// [`session_id`], answered from memory when the request carries the same single `Cookie`
    /// header as the last one.
    pub fn session_id(&self, headers: &HeaderMap, sealer: &Sealer, name: &str) -> Option<String> {
        let mut values = headers.get_all(COOKIE).iter();
        let (Some(header), None) = (values.next(), values.next()) else {
            return session_id(headers, sealer, name);
        };
        let mut last = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = last.as_ref()
            && known.header == header
        {
            return known.session_id.clone();
        }
        let sid = session_id(headers, sealer, name);
        // An owned copy (see `Remembered::header`).
        if let Ok(copy) = HeaderValue::from_bytes(header.as_bytes()) {
            *last = Some(Remembered { header: copy, session_id: sid.clone(), forwarded: None });
        }
        sid
    }

    /// [`without`], answered from memory when `value` is the remembered header.
    pub fn without(&self, value: &HeaderValue, name: &str) -> Option<HeaderValue> {
        let mut last = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match last.as_mut() {
            // Worked out from the owned copy: an unchanged header handed back as it is must
            // not be the request's slice (see `Remembered::header`).
            Some(known) if known.header == value => {
                known.forwarded.get_or_insert_with(|| without(&known.header, name)).clone()
            }
            _ => without(value, name),
        }
    }
}

/// A `Cookie` value without the cookie `name`, as the upstream gets it: unchanged (no copy)
/// when it does not carry it, `None` when nothing else is left. Read as bytes, so that a
/// header with a byte outside ASCII in some other cookie (which the session lookup skips)
/// still loses the session cookie.
pub fn without(value: &HeaderValue, name: &str) -> Option<HeaderValue> {
    let ours = |pair: &[u8]| {
        let pair = pair.trim_ascii();
        pair.iter().position(|b| *b == b'=').is_some_and(|eq| pair[..eq].trim_ascii() == name.as_bytes())
    };
    let pairs = || value.as_bytes().split(|b| *b == b';');
    if !pairs().any(ours) {
        return Some(value.clone());
    }
    let mut kept = Vec::with_capacity(value.len());
    for pair in pairs().filter(|p| !ours(p)).map(<[u8]>::trim_ascii).filter(|p| !p.is_empty()) {
        if !kept.is_empty() {
            kept.extend_from_slice(b"; ");
        }
        kept.extend_from_slice(pair);
    }
    if kept.is_empty() { None } else { HeaderValue::from_bytes(&kept).ok() }
}

/// Every value of cookie `name` in the request (a browser may send several).
fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The login-binding cookie's value, if the request has a well-formed one.
pub fn binding(headers: &HeaderMap, name: &str) -> Option<String> {
    cookie_values(headers, name)
        .find(|v| {
            v.len() >= 43
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
}

/// `Set-Cookie` for the login-binding cookie (lives as long as a login may take).
pub fn set_binding(name: &str, value: &str, secure: bool) -> String {
    let max_age = portcullis_runtime::buckets::LOGIN_STATE_TTL.as_secs();
    let mut c = format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax");
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// `Set-Cookie` that removes the login-binding cookie.
pub fn clear_binding(name: &str, secure: bool) -> String {
    let mut c = format!("{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// `Set-Cookie` for a new session.
pub fn set(cookie: &CookieConfig, sealer: &Sealer, session_id: &str, max_age: i64, secure: bool) -> String {
    let value = sealer.seal(session_id.as_bytes(), cookie.name.as_bytes());
    attributes(cookie, &value, max_age.max(0), secure)
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear(cookie: &CookieConfig, secure: bool) -> String {
    attributes(cookie, "", 0, secure)
}

fn attributes(cookie: &CookieConfig, value: &str, max_age: i64, secure: bool) -> String {
    let mut c = format!("{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax", cookie.name);
    if let Some(domain) = &cookie.domain {
        c.push_str("; Domain=");
        c.push_str(domain);
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_runtime::crypto::{Purpose, Secret};

    #[test]
    fn session_cookie_round_trips() {
        let sealer = Sealer::new(&Secret::from_bytes([4; 32]), Purpose::SessionCookie);
        let config = CookieConfig {
            name: "_pomerium".into(),
            expire: std::time::Duration::from_secs(60),
            domain: None,
        };
        let set = set(&config, &sealer, "sid-1", 60, true);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Secure"));
        let value = set.split(';').next().unwrap_or_default().to_owned();
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_str(&format!("a=1; {value}; b=2")).expect("header"));
        assert_eq!(session_id(&headers, &sealer, "_pomerium").as_deref(), Some("sid-1"));
        let other = Sealer::new(&Secret::from_bytes([5; 32]), Purpose::SessionCookie);
        assert_eq!(session_id(&headers, &other, "_pomerium"), None);
    }

    #[test]
    fn a_remembered_cookie_answers_as_opening_it_would() {
        let sealer = Sealer::new(&Secret::from_bytes([4; 32]), Purpose::SessionCookie);
        let sealed = |sid: &str| sealer.seal(sid.as_bytes(), b"_pomerium");
        let request = |cookie: &str| {
            let mut headers = HeaderMap::new();
            headers.append(COOKIE, HeaderValue::from_str(cookie).expect("header"));
            headers
        };
        let opened = Opened::default();
        let one = request(&format!("_pomerium={}", sealed("sid-1")));
        assert_eq!(opened.session_id(&one, &sealer, "_pomerium").as_deref(), Some("sid-1"));
        assert_eq!(opened.session_id(&one, &sealer, "_pomerium").as_deref(), Some("sid-1"));
        // Another header on the same connection is worked out, not answered from memory.
        let two = request(&format!("_pomerium={}", sealed("sid-2")));
        assert_eq!(opened.session_id(&two, &sealer, "_pomerium").as_deref(), Some("sid-2"));
        // A forged value is refused whatever was remembered, and a request without the
        // cookie has no session.
        assert_eq!(opened.session_id(&request("_pomerium=forged"), &sealer, "_pomerium"), None);
        assert_eq!(opened.session_id(&request("_pomerium=forged"), &sealer, "_pomerium"), None);
        assert_eq!(opened.session_id(&request("theme=dark"), &sealer, "_pomerium"), None);
        assert_eq!(opened.session_id(&HeaderMap::new(), &sealer, "_pomerium"), None);
        // Two Cookie headers are read as they come, with no memory.
        let mut two_headers = request("_pomerium=forged");
        two_headers.append(
            COOKIE,
            HeaderValue::from_str(&format!("_pomerium={}", sealed("sid-4"))).expect("header"),
        );
        assert_eq!(opened.session_id(&two_headers, &sealer, "_pomerium").as_deref(), Some("sid-4"));
        // The first value that opens wins, as without memory.
        let both = request(&format!("_pomerium=forged; _pomerium={}", sealed("sid-3")));
        assert_eq!(opened.session_id(&both, &sealer, "_pomerium").as_deref(), Some("sid-3"));
    }

    #[test]
    fn the_forwarded_cookie_header_is_the_one_working_it_out_gives() {
        let value = |v: &'static str| HeaderValue::from_static(v);
        let sealer = Sealer::new(&Secret::from_bytes([4; 32]), Purpose::SessionCookie);
        let opened = Opened::default();
        let cookie = format!("a=1; _pomerium={}; b=2", sealer.seal(b"sid-1", b"_pomerium"));
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_str(&cookie).expect("header"));
        assert_eq!(opened.session_id(&headers, &sealer, "_pomerium").as_deref(), Some("sid-1"));
        let remembered = headers.get(COOKIE).expect("cookie");
        for _ in 0..2 {
            assert_eq!(opened.without(remembered, "_pomerium"), Some(value("a=1; b=2")));
        }
        // Other headers are worked out, whatever is remembered.
        assert_eq!(opened.without(&value("_pomerium=x"), "_pomerium"), None);
        assert_eq!(opened.without(&value("theme=dark"), "_pomerium"), Some(value("theme=dark")));
        assert_eq!(opened.without(&value(" ; _pomerium=x;c=3"), "_pomerium"), Some(value("c=3")));
        assert_eq!(opened.without(&value("_pomerium =x; c"), "_pomerium"), Some(value("c")));
        // A byte outside ASCII elsewhere in the header (no session for the lookup) still does
        // not let the session cookie through, and the other bytes pass as they came.
        let odd = HeaderValue::from_bytes(b"theme=d\xc3\xa9j\xc3\xa0; _pomerium=sealed").expect("obs-text");
        assert_eq!(session_id(&HeaderMap::from_iter([(COOKIE, odd.clone())]), &sealer, "_pomerium"), None);
        let kept = opened.without(&odd, "_pomerium").expect("kept");
        assert_eq!(kept.as_bytes(), b"theme=d\xc3\xa9j\xc3\xa0");
        assert_eq!(opened.without(remembered, "_pomerium"), Some(value("a=1; b=2")));
    }
}
