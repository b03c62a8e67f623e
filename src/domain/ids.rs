//! [`IdList`]: many short ids in one buffer.
//!
//! A ranking names up to 2,000 candidate sessions. Held as a `Vec<String>`, each id costs an
//! allocation when the request is decoded and a free when the ranking is done; measured under
//! callgrind, decoding the 500 ids of a ranking that way took 13% of the `Rank` service's
//! instructions (docs/BENCHMARKS.md). An `IdList` keeps the ids back to back in one `String` with
//! their end offsets beside them: two buffers, grown by doubling, whatever the list's length.

/// Ids in order, stored back to back in one buffer. Ids may repeat and may be empty; validation
/// (`crate::api::convert`) decides what a request may hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdList {
    /// Every id, concatenated.
    text: String,
    /// Where each id ends in `text` (the next one starts there).
    ends: Vec<usize>,
}

impl IdList {
    /// Appends `id`.
    pub fn push(&mut self, id: &str) {
        self.text.push_str(id);
        self.ends.push(self.text.len());
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the list holds no id.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`-th id.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.text[start..end])
    }

    /// The ids in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter { list: self, next: 0 }
    }

    /// Removes every id, keeping the buffers.
    pub fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }
}

impl<S: AsRef<str>> FromIterator<S> for IdList {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> IdList {
        let mut list = IdList::default();
        for id in iter {
            list.push(id.as_ref());
        }
        list
    }
}

impl<'a> IntoIterator for &'a IdList {
    type Item = &'a str;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over an [`IdList`]'s ids.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    list: &'a IdList,
    next: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let id = self.list.get(self.next)?;
        self.next += 1;
        Some(id)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.list.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// An `IdList` gives back exactly the ids pushed, in order, empty ones included.
        #[test]
        fn holds_what_was_pushed(ids in proptest::collection::vec(".{0,12}", 0..40)) {
            let list: IdList = ids.iter().collect();
            prop_assert_eq!(list.len(), ids.len());
            prop_assert_eq!(list.is_empty(), ids.is_empty());
            prop_assert_eq!(list.iter().len(), ids.len());
            prop_assert_eq!(list.iter().collect::<Vec<_>>(), ids.iter().map(String::as_str).collect::<Vec<_>>());
            for (i, id) in ids.iter().enumerate() {
                prop_assert_eq!(list.get(i), Some(id.as_str()));
            }
            prop_assert_eq!(list.get(ids.len()), None);
        }
    }

    #[test]
    fn empty_ids_are_kept_apart() {
        let mut list: IdList = ["", "a", "", "bc"].into_iter().collect();
        assert_eq!(list.iter().collect::<Vec<_>>(), ["", "a", "", "bc"]);
        list.clear();
        assert!(list.is_empty());
        assert_eq!(list.get(0), None);
    }
}
