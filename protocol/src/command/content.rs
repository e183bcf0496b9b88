//! The checks on what people type: lengths, links while links are off,
//! blocked words.

use super::*;

pub(super) fn text_field(text: &str, what: &str, max: usize) -> Result<String, Rejection> {
    let t = text.trim();
    if t.is_empty() {
        return Err(Rejection::invalid(
            "empty_text",
            format!("{what} must not be empty"),
        ));
    }
    if t.contains('\0') {
        // the log is stored as PostgreSQL jsonb, which cannot hold NUL
        return Err(Rejection::invalid(
            "invalid_text",
            format!("{what} holds a NUL character"),
        ));
    }
    let n = t.chars().count();
    if n > max {
        return Err(Rejection::invalid(
            "text_too_long",
            format!("{what} is {n} characters; at most {max} are allowed"),
        ));
    }
    Ok(t.to_owned())
}

/// True if the text carries something a browser would follow as a link.
pub fn contains_link(text: &str) -> bool {
    let lower = text.to_lowercase();
    if lower.contains("://") || lower.contains("www.") {
        return true;
    }
    // bare domains such as "example.com/path" or "evil.io"
    const TLDS: [&str; 12] = [
        ".com", ".org", ".net", ".io", ".edu", ".gov", ".ly", ".me", ".co", ".info", ".xyz", ".app",
    ];
    lower.split_whitespace().any(|word| {
        let w = word.trim_end_matches(|c: char| !c.is_alphanumeric());
        TLDS.iter().any(|tld| {
            w.find(tld).is_some_and(|at| {
                at > 0 && {
                    let rest = &w[at + tld.len()..];
                    rest.is_empty() || rest.starts_with('/')
                }
            })
        })
    })
}

/// The first blocked word the text contains, compared case-insensitively on
/// word boundaries ("class" does not match "classic").
pub fn blocked_word<'a>(text: &str, blocked: &'a [String]) -> Option<&'a str> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect();
    blocked
        .iter()
        .find(|b| {
            let b = b.to_lowercase();
            let parts: Vec<&str> = b
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .collect();
            !parts.is_empty()
                && words
                    .windows(parts.len())
                    .any(|win| win.iter().zip(&parts).all(|(a, b)| a == b))
        })
        .map(|s| s.as_str())
}

pub(super) fn check_content(
    state: &SessionState,
    who: &Standing<'_>,
    text: &str,
) -> Result<(), Rejection> {
    if let Some(word) = blocked_word(text, &state.settings.blocked_words) {
        return Err(Rejection::invalid(
            "blocked_content",
            format!("the text contains a blocked word ({word:?})"),
        ));
    }
    if contains_link(text) && !who.has(Permission::PostLinks) {
        let mut r = Rejection::missing(Permission::PostLinks);
        r.code = "links_not_allowed".to_owned();
        r.message = "links are off for you in this session (needs post_links)".to_owned();
        return Err(r);
    }
    Ok(())
}
