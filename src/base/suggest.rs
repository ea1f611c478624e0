//! Did-you-mean suggestions for misspelled names.

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let word_lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| {
            let distance = strsim::damerau_levenshtein(&word_lower, &c.to_ascii_lowercase());
            (distance, c)
        })
        // One edit per three characters: `metod` → `method`, `uid` → `uuid`, but no guess
        // for one- or two-letter names, where any other short name is one edit away.
        .filter(|(d, c)| *d <= c.chars().count().max(word.chars().count()) / 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `did you mean `x`?` when there is a close candidate.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_and_ignores_strangers() {
        assert_eq!(closest("metod", ["method", "path", "json"]), Some("method"));
        assert_eq!(closest("stpes", ["steps", "inputs"]), Some("steps"));
        assert_eq!(
            closest("ExplicityOptedIn", ["OptedOut", "ExplicitlyOptedIn"]),
            Some("ExplicitlyOptedIn")
        );
        assert_eq!(closest("banana", ["method", "path"]), None);
        assert_eq!(closest("path", ["path"]), None);
        assert_eq!(closest("C", ["A", "B"]), None);
    }
}
