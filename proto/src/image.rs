//! Container image references, checked against the grammar Docker and the OCI
//! distribution spec use (`github.com/distribution/reference`):
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path                      (at most 255 characters)
//! domain     := host [ ":" port ]                        host: DNS name or [IPv6], port: digits
//! path       := component ( "/" component )*
//! component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! digest     := algorithm ":" [0-9a-fA-F]{32,}           algorithm: [A-Za-z][A-Za-z0-9]* joined by + . - _
//! ```
//!
//! Every accepted reference starts with a letter or a digit, so none can be taken for a
//! command-line flag (`--privileged`, `-v`), and none holds whitespace, control
//! characters, `..` or an empty component.

use berth_i18n::api::Text;
use berth_i18n::text;

/// The longest name (without tag and digest), as in the distribution grammar.
pub const MAX_NAME_LEN: usize = 255;
/// The longest reference accepted as a whole (name, tag and digest).
pub const MAX_REFERENCE_LEN: usize = 512;
/// The longest tag.
pub const MAX_TAG_LEN: usize = 128;

/// Checks `reference`; the error says what is wrong with it, in words a user can act on.
pub fn check(reference: &str) -> Result<(), Text> {
    // The forms a reference may take, said in every message about its form.
    let forms = || text!(ImageForms);
    if reference.is_empty() {
        return Err(text!(MustNotBeEmpty));
    }
    if reference.len() > MAX_REFERENCE_LEN {
        return Err(text!(AtMostCharacters, max = MAX_REFERENCE_LEN));
    }
    if reference.starts_with('-') {
        return Err(text!(ImageLooksLikeFlag, reference = ?reference, forms = @forms()));
    }
    if let Some(c) = reference
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
    {
        return Err(text!(
            ImageBadCharacter,
            reference = ?reference,
            c = ?c,
            forms = @forms()
        ));
    }
    let bad = |why: Text| {
        Err(text!(
            NotAnImage,
            reference = ?reference,
            why = @why,
            forms = @forms()
        ))
    };
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest
        && !is_digest(digest)
    {
        return bad(text!(ImageDigest));
    }
    // A tag follows the last ':' that comes after the last '/' (a registry port does not).
    let last_slash = rest.rfind('/');
    let (name, tag) = match rest.rfind(':') {
        Some(colon) if last_slash.is_none_or(|s| colon > s) => {
            (&rest[..colon], Some(&rest[colon + 1..]))
        }
        _ => (rest, None),
    };
    if let Some(tag) = tag
        && !is_tag(tag)
    {
        return bad(text!(ImageTag));
    }
    if name.is_empty() {
        return bad(text!(ImageNameEmpty));
    }
    if name.len() > MAX_NAME_LEN {
        return bad(text!(ImageNameTooLong));
    }
    let mut parts = name.split('/');
    let first = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    let path: Vec<&str> = if !rest.is_empty() && is_domain(first) {
        rest
    } else {
        std::iter::once(first).chain(rest).collect()
    };
    for component in path {
        if !is_path_component(component) {
            return bad(text!(ImageComponent, component = ?component));
        }
    }
    Ok(())
}

/// `[a-z0-9]+ ((. | _ | __ | -+) [a-z0-9]+)*`
fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host [":" port]`, host a DNS name, an IPv4 address or a bracketed IPv6 address.
fn is_domain(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty() || !v6.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("v6", port),
                None => return false,
            },
        }
    } else {
        match s.split_once(':') {
            Some((host, port)) => (host, port),
            None => (s, "0"),
        }
    };
    let port_ok = !port.is_empty() && port.bytes().all(|c| c.is_ascii_digit());
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    port_ok && host.split('.').all(label_ok)
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && word(b[0])
        && b.iter().all(|c| word(*c) || *c == b'.' || *c == b'-')
}

/// `algorithm ":" hex{32,}`, algorithm components `[A-Za-z][A-Za-z0-9]*` joined by `+.-_`.
fn is_digest(s: &str) -> bool {
    let Some((algorithm, hex)) = s.split_once(':') else {
        return false;
    };
    let component_ok = |c: &str| {
        c.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && c.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    algorithm.split(['+', '.', '-', '_']).all(component_ok)
        && hex.len() >= 32
        && hex.bytes().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn real_references_are_accepted() {
        let with_digest = format!("busybox@{DIGEST}");
        let tagged_digest = format!("ghcr.io/acme/trainer:v2@{DIGEST}");
        for ok in [
            "busybox",
            "busybox:1.36",
            "berth-test/busybox:latest",
            "library/ubuntu:22.04",
            "nvcr.io/nvidia/pytorch:24.05-py3",
            "registry.example:5000/team/trainer:v2",
            "localhost:5000/x",
            "localhost/x",
            "192.168.1.10:5000/a/b_c__d-e--f.g",
            "[::1]:5000/img",
            "[fe80::1]/img",
            // Found by fuzzing against the distribution grammar: any number of port digits.
            "registry.example:501000/team/trainer:v2",
            "My-Registry.example/img",
            "a",
            "0",
            "img:_",
            "img:V1.2-RC_3",
            with_digest.as_str(),
            tagged_digest.as_str(),
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn flags_and_oddities_are_refused() {
        let long_tag = format!("img:{}", "a".repeat(129));
        let long_name = format!("a/{}", "b".repeat(254));
        for bad in [
            "",
            "--privileged",
            "-v",
            "-",
            "--volume=/:/host",
            "busybox --privileged",
            "busybox\n",
            "busy\0box",
            "Busybox",
            "img:",
            "img:.x",
            "img:-x",
            ":tag",
            "/img",
            "img/",
            "a//b",
            "a/../b",
            "../etc",
            "a..b",
            "a___b",
            "a_-b",
            ".hidden",
            "img@sha256:abc",
            "img@:0123456789abcdef0123456789abcdef",
            "img@sha256:0123456789abcdef0123456789abcdeg",
            "host:port/img",
            "[::1/img",
            "[::ffff:1.2.3.4]/img",
            "registry.example:/team/trainer:v2",
            "ünïcode",
            long_tag.as_str(),
            long_name.as_str(),
        ] {
            assert!(check(bad).is_err(), "{bad:?} should be refused");
        }
        let e = check("--privileged").unwrap_err().to_string();
        assert!(e.contains("looks like a command-line flag"), "{e}");
        let e = check("Busybox").unwrap_err().to_string();
        assert!(
            e.contains("\"Busybox\" is not a valid name component"),
            "{e}"
        );
        assert!(
            check(&"a".repeat(513))
                .unwrap_err()
                .to_string()
                .contains("at most 512")
        );
    }
}
