//! The normal forms the match ladder compares: emails, domains and company names.

/// Lower-cased, trimmed email; `None` when it is not an address.
pub fn email(raw: &str) -> Option<String> {
    let e = raw.trim().to_lowercase();
    let (local, host) = e.split_once('@')?;
    (!local.is_empty() && host.contains('.') && !e.contains(char::is_whitespace)).then_some(e)
}

/// The bare domain of a website: no scheme, `www.`, port, path or trailing dot.
/// `https://www.Example.com/about` → `example.com`.
pub fn domain(website: &str) -> Option<String> {
    let w = website.trim().to_lowercase();
    let w = w.split_once("://").map_or(w.as_str(), |(_, rest)| rest);
    let host = w.split(['/', '?', '#']).next()?;
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.split(':').next()?.trim_end_matches('.');
    let host = host.strip_prefix("www.").unwrap_or(host);
    (host.contains('.')
        && !host.starts_with('.')
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-'))
    .then(|| host.to_string())
}

/// The domain of an email address.
pub fn email_domain(raw: &str) -> Option<String> {
    email(raw).and_then(|e| e.split_once('@').and_then(|(_, h)| domain(h)))
}

const LEGAL_SUFFIXES: [&str; 16] = [
    "inc",
    "incorporated",
    "llc",
    "ltd",
    "limited",
    "corp",
    "corporation",
    "co",
    "company",
    "gmbh",
    "ag",
    "sa",
    "plc",
    "bv",
    "pty",
    "srl",
];

/// A company name for comparison: lower case, punctuation dropped, legal suffixes removed,
/// whitespace collapsed. `"Acme, Inc."` and `"ACME"` are equal.
pub fn company_name(raw: &str) -> Option<String> {
    let cleaned: String = raw
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let mut words: Vec<&str> = cleaned.split_whitespace().collect();
    while words.len() > 1 && words.last().is_some_and(|w| LEGAL_SUFFIXES.contains(w)) {
        words.pop();
    }
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_compare_case_and_space_insensitively() {
        assert_eq!(
            email("  Doug.Bunting@Cornell.EDU "),
            Some("doug.bunting@cornell.edu".into())
        );
        assert_eq!(email("not-an-email"), None);
    }

    #[test]
    fn domains_come_from_any_website_spelling() {
        for w in [
            "https://www.Example.com/about",
            "example.com",
            "http://example.com:8080",
            "www.example.com.",
        ] {
            assert_eq!(domain(w), Some("example.com".into()), "{w}");
        }
        assert_eq!(domain("localhost"), None);
        assert_eq!(
            email_domain("a@Sub.Example.com"),
            Some("sub.example.com".into())
        );
    }

    #[test]
    fn company_names_drop_punctuation_and_legal_suffixes() {
        assert_eq!(company_name("Acme, Inc."), Some("acme".into()));
        assert_eq!(company_name("ACME"), Some("acme".into()));
        assert_eq!(
            company_name("Express Logistics and Transport Co"),
            Some("express logistics and transport".into())
        );
        assert_eq!(company_name("Inc"), Some("inc".into()));
        assert_eq!(company_name(" ,, "), None);
    }
}
