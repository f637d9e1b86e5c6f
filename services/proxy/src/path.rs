//! Request path normalisation, before any matching. The upstream receives the normalised
//! path, so it sees exactly the path the policy was decided on.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with `/`")]
    NotAbsolute,
    #[error("encoded slashes and backslashes are not allowed in paths")]
    EncodedSlash,
    #[error("backslashes are not allowed in paths")]
    Backslash,
}

/// Resolve dot segments (including percent-encoded dots), merge repeated slashes, and
/// reject encoded `/` or `\` (Pomerium's default). Returns the input unchanged when it was
/// already normal.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path.contains('\\') {
        return Err(PathError::Backslash);
    }
    let lower_has =
        |needle: &str| path.as_bytes().windows(3).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()));
    if lower_has("%2f") || lower_has("%5c") {
        return Err(PathError::EncodedSlash);
    }
    let needs_work = path.contains("//") || path.split('/').any(is_dot_segment);
    if !needs_work {
        return Ok(Cow::Borrowed(path));
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match classify(seg) {
            Segment::Empty => trailing_slash = i == last,
            Segment::Current => trailing_slash = i == last,
            Segment::Parent => {
                out.pop();
                trailing_slash = i == last;
            }
            Segment::Name => {
                out.push(seg);
                trailing_slash = false;
            }
        }
    }
    let mut result = String::with_capacity(path.len());
    for seg in &out {
        result.push('/');
        result.push_str(seg);
    }
    if trailing_slash || out.is_empty() {
        result.push('/');
    }
    Ok(Cow::Owned(result))
}

enum Segment {
    Empty,
    Current,
    Parent,
    Name,
}

fn is_dot_segment(seg: &str) -> bool {
    matches!(classify(seg), Segment::Current | Segment::Parent)
}

fn classify(seg: &str) -> Segment {
    if seg.is_empty() {
        return Segment::Empty;
    }
    let decoded = seg.to_ascii_lowercase().replace("%2e", ".");
    match decoded.as_str() {
        "." => Segment::Current,
        ".." => Segment::Parent,
        _ => Segment::Name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_a_browser_would() {
        for (input, want) in [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("//a///b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/public/../admin", "/admin"),
            ("/a/%2e%2E/admin", "/admin"),
            ("/a/.%2e/admin", "/admin"),
            ("/../../etc", "/etc"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/..", "/"),
        ] {
            assert_eq!(normalize(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn rejects_encoded_slashes_and_backslashes() {
        assert_eq!(normalize("/a%2Fb"), Err(PathError::EncodedSlash));
        assert_eq!(normalize("/a%2fb"), Err(PathError::EncodedSlash));
        assert_eq!(normalize("/a%5cb"), Err(PathError::EncodedSlash));
        assert_eq!(normalize("/a\\b"), Err(PathError::Backslash));
        assert_eq!(normalize("a"), Err(PathError::NotAbsolute));
    }
}
