//! The raw facts format: a file of sections
//!
//! ```text
//! === TSIM_SECTION_START:<name> ===
//! TITLE: …
//! COMMAND: …
//! TIMESTAMP: …
//! ---
//! <content>
//! EXIT_CODE: <int>
//! === TSIM_SECTION_END:<name> ===
//! ```
//!
//! Everything outside sections is ignored (headers, the `TSIM_FACTS_COLLECTION_COMPLETE`
//! trailer). A section that does not close, or closes under another name, is an error with
//! its file and line.

use std::path::Path;

use super::FactsError;

/// One section of a raw facts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Its name, e.g. `routing_table`.
    pub name: String,
    /// Its `COMMAND:` header, if any.
    pub command: Option<String>,
    /// The content lines with their 1-based line numbers in the file (blank lines dropped).
    pub lines: Vec<(usize, String)>,
    /// The line of its start marker.
    pub start_line: usize,
    /// Its `EXIT_CODE:`, if given.
    pub exit_code: Option<i32>,
}

impl Section {
    /// The content as text (lines joined), trimmed.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (_, line) in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        out.trim().to_owned()
    }
}

/// Reads a file as UTF-8, or as latin-1 if it is not valid UTF-8.
pub fn read_text(path: &Path) -> Result<String, FactsError> {
    let bytes = std::fs::read(path)
        .map_err(|e| FactsError::new(path, 0, format!("cannot read the file: {e}")))?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        // Latin-1: every byte is the code point of the same value.
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    })
}

const START: &str = "=== TSIM_SECTION_START:";
const END: &str = "=== TSIM_SECTION_END:";

fn marker<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.trim_end().strip_prefix(prefix)?.strip_suffix(" ===")
}

/// Parses the sections of one raw facts file.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Section>, FactsError> {
    let mut sections = Vec::new();
    let mut current: Option<(Section, bool)> = None; // (section, in content)
    for (index, raw_line) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw_line.trim_end_matches('\r');
        if let Some(name) = marker(line, START) {
            if let Some((open, _)) = &current {
                return Err(FactsError::new(
                    path,
                    number,
                    format!(
                        "section {:?} starts before section {:?} (line {}) ends",
                        name, open.name, open.start_line
                    ),
                ));
            }
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(FactsError::new(
                    path,
                    number,
                    format!("bad section name {name:?}"),
                ));
            }
            let section = Section {
                name: name.to_owned(),
                command: None,
                lines: Vec::new(),
                start_line: number,
                exit_code: None,
            };
            current = Some((section, false));
            continue;
        }
        if let Some(name) = marker(line, END) {
            match current.take() {
                Some((section, _)) if section.name == name => sections.push(section),
                Some((section, _)) => {
                    return Err(FactsError::new(
                        path,
                        number,
                        format!(
                            "section {:?} (line {}) ends as {:?}",
                            section.name, section.start_line, name
                        ),
                    ));
                }
                None => {
                    return Err(FactsError::new(
                        path,
                        number,
                        format!("section {name:?} ends but never started"),
                    ));
                }
            }
            continue;
        }
        let Some((section, in_content)) = current.as_mut() else {
            continue;
        };
        if !*in_content {
            if line == "---" {
                *in_content = true;
            } else if let Some(command) = line.strip_prefix("COMMAND:") {
                section.command = Some(command.trim().to_owned());
            }
            continue;
        }
        if let Some(code) = line.strip_prefix("EXIT_CODE:") {
            section.exit_code = code.trim().parse().ok();
            continue;
        }
        if !line.trim().is_empty() {
            section.lines.push((number, line.to_owned()));
        }
    }
    if let Some((section, _)) = current {
        return Err(FactsError::new(
            path,
            section.start_line,
            format!("section {:?} never ends", section.name),
        ));
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_with_headers_and_trailers() {
        let text = "# Hostname: r1\n\n=== TSIM_SECTION_START:routing_table ===\nTITLE: x\nCOMMAND: /sbin/ip route show table 100\nTIMESTAMP: t\n---\ndefault via 10.0.0.1 dev eth0\n\n10.1.0.0/16 dev eth0\nEXIT_CODE: 0\n=== TSIM_SECTION_END:routing_table ===\n=== TSIM_FACTS_COLLECTION_COMPLETE ===\n=== TSIM_SECTION_START:ipset_save ===\n---\ncreate s hash:ip\n=== TSIM_SECTION_END:ipset_save ===\n";
        let s = parse(Path::new("r1_facts.txt"), text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "routing_table");
        assert_eq!(
            s[0].command.as_deref(),
            Some("/sbin/ip route show table 100")
        );
        assert_eq!(
            s[0].lines,
            vec![
                (8, "default via 10.0.0.1 dev eth0".into()),
                (10, "10.1.0.0/16 dev eth0".into())
            ]
        );
        assert_eq!(s[0].exit_code, Some(0));
        assert_eq!(s[1].text(), "create s hash:ip");
    }

    #[test]
    fn malformed_sections_name_file_and_line() {
        let p = Path::new("x_facts.txt");
        let e = parse(p, "=== TSIM_SECTION_START:a ===\n---\nx\n").unwrap_err();
        assert_eq!(e.to_string(), "x_facts.txt:1: section \"a\" never ends");
        let e = parse(
            p,
            "\n=== TSIM_SECTION_START:a ===\n=== TSIM_SECTION_START:b ===\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 3);
        let e = parse(
            p,
            "=== TSIM_SECTION_START:a ===\n=== TSIM_SECTION_END:b ===\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("ends as \"b\""), "{e}");
        let e = parse(p, "=== TSIM_SECTION_END:a ===\n").unwrap_err();
        assert!(e.to_string().contains("never started"), "{e}");
    }

    #[test]
    fn latin1_files_are_read() {
        let tmp = std::env::temp_dir().join(format!("tsim-latin1-{}", std::process::id()));
        std::fs::write(&tmp, b"caf\xe9\n").unwrap();
        assert_eq!(read_text(&tmp).unwrap(), "caf\u{e9}\n");
        let _ = std::fs::remove_file(tmp);
    }
}
