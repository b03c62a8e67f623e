//! Client-supplied text in answers and logs: quoted, and bounded.

/// `value` quoted for an error text or a log line: its first 64 characters, then its length when
/// longer, so a megabyte of input never comes back in an answer or fills a log.
pub fn quote(value: &str) -> String {
    const SHOWN: usize = 64;
    match value.char_indices().nth(SHOWN) {
        None => format!("{value:?}"),
        Some((end, _)) => format!("{:?}… ({} bytes)", &value[..end], value.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn long_values_are_cut_at_a_character_boundary() {
        assert_eq!(quote("ab"), "\"ab\"");
        let long = "é".repeat(100);
        assert_eq!(quote(&long), format!("\"{}\"… (200 bytes)", "é".repeat(64)));
    }
}
