//! The text a hit shows: the whole document when short (a transcript
//! segment, a slide title), a window around the matched words when long (a
//! slide full of text, a long question).

use std::collections::BTreeMap;

use tantivy::snippet::SnippetGenerator;

use crate::schema;

/// Texts up to this many characters are shown whole; longer ones are cut to
/// about this many.
pub(crate) const MAX_CHARS: usize = 240;

pub(crate) struct HitText {
    stems: Vec<String>,
    /// Built on the first long text: most result pages have none.
    generator: Option<SnippetGenerator>,
}

impl HitText {
    pub(crate) fn new(stems: &[String]) -> HitText {
        HitText {
            stems: stems.to_vec(),
            generator: None,
        }
    }

    pub(crate) fn cut(&mut self, text: &str) -> String {
        if text.chars().count() <= MAX_CHARS {
            return text.to_string();
        }
        let stems = &self.stems;
        let generator = self.generator.get_or_insert_with(|| {
            let terms: BTreeMap<String, f32> = stems.iter().map(|s| (s.clone(), 1.0)).collect();
            // The field is only used by `snippet_from_doc`; we pass the text.
            let (_, fields) = schema::build();
            SnippetGenerator::new(terms, schema::stemmed_analyzer(), fields.text, MAX_CHARS)
        });
        let snippet = generator.snippet(text);
        let fragment = snippet.fragment().trim();
        if !fragment.is_empty() {
            return fragment.to_string();
        }
        // Matched only through a typo (the generator knows exact stems): the
        // beginning, cut at a word boundary.
        let end = text
            .char_indices()
            .nth(MAX_CHARS)
            .map_or(text.len(), |(i, _)| i);
        let head = &text[..end];
        match head.rfind(char::is_whitespace) {
            Some(i) if i > 0 => head[..i].to_string(),
            _ => head.to_string(),
        }
    }
}
