//! The documentation cannot rot when it moves: every relative link in README.md and the other
//! Markdown pages (docs/, infra/, rotators/, bench/) points to a file that exists and, when it
//! names an anchor, to a heading of that file (GitHub's anchors).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The pages a reader reaches from README.md.
fn pages(root: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = [
        "README.md",
        "infra/README.md",
        "infra/terraform/README.md",
        "rotators/README.md",
        "bench/README.md",
    ]
    .iter()
    .map(|p| root.join(p))
    .filter(|p| p.exists())
    .collect();
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The text outside fenced code blocks and inline code spans, line by line (code may show
/// brackets and parentheses that are no link).
fn prose(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let kept: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join("");
        out.push(kept);
    }
    out
}

/// GitHub's anchor of a heading: lower case, code marks and punctuation dropped (but `-` and
/// `_`), spaces as `-`; a repeated anchor gets `-1`, `-2`, ...
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let Some(title) = line.strip_prefix('#') else {
            continue;
        };
        if fenced {
            continue;
        }
        let title = title.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let slug: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut unique = slug.clone();
        let mut n = 0;
        while seen.contains(&unique) {
            n += 1;
            unique = format!("{slug}-{n}");
        }
        seen.insert(unique);
    }
    seen
}

/// Every `[text](target)` of the prose, as written.
fn links(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(markdown) {
        let mut rest = line.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    out
}

/// The broken links of one page: `target: why`.
fn broken(page: &Path, markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    for link in links(markdown) {
        if link.contains("://") || link.starts_with("mailto:") {
            continue;
        }
        let (file, anchor) = match link.split_once('#') {
            Some((f, a)) => (f, Some(a)),
            None => (link.as_str(), None),
        };
        let target = if file.is_empty() {
            page.to_path_buf()
        } else {
            page.parent().unwrap().join(file)
        };
        if !target.exists() {
            out.push(format!("{link}: no file {}", target.display()));
            continue;
        }
        if let Some(anchor) = anchor {
            let text = std::fs::read_to_string(&target).unwrap_or_default();
            if !anchors(&text).contains(anchor) {
                out.push(format!("{link}: no heading with that anchor"));
            }
        }
    }
    out
}

#[test]
fn every_relative_link_resolves() {
    let root = workspace();
    let pages = pages(&root);
    assert!(
        pages.iter().any(|p| p.ends_with("docs/protocol.md")),
        "{pages:?}"
    );
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        checked += links(&text).len();
        for p in broken(page, &text) {
            problems.push(format!(
                "{}: {p}",
                page.strip_prefix(&root).unwrap().display()
            ));
        }
    }
    assert!(checked > 20, "only {checked} links found");
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

/// The checker finds what it is for: a missing file, a missing anchor; and passes what is right
/// (a heading with code and an apostrophe, a repeated heading, a link in code).
#[test]
fn the_checker_reports_a_missing_file_and_a_missing_anchor() {
    let dir = std::env::temp_dir().join(format!("docs-links-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("page.md");
    let text = "# Moving from AWS's templates (`x`)\n\n## Notes\n\n## Notes\n\n\
        [ok](#moving-from-awss-templates-x) [ok](page.md#notes-1) [ok](page.md)\n\
        [gone](missing.md) [bad](#nowhere) [bad](page.md#notes-2)\n\
        `[code](not-a-link.md)`\n\n```\n[fenced](not-a-link.md)\n```\n";
    std::fs::write(&page, text).unwrap();
    let found = broken(&page, text);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].starts_with("missing.md: no file"), "{found:?}");
    assert_eq!(found[1], "#nowhere: no heading with that anchor");
    assert_eq!(found[2], "page.md#notes-2: no heading with that anchor");
}

/// Each rotator keeps its threat table in one place: `docs/rotators/<crate>.md` has a `Threats`
/// section with a table, and the README's quick start links that page.
#[test]
fn every_rotator_has_a_threat_table_the_readme_links() {
    let root = workspace();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut crates = Vec::new();
    for entry in std::fs::read_dir(root.join("rotators")).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("Cargo.toml").exists() {
            crates.push(dir.file_name().unwrap().to_string_lossy().to_string());
        }
    }
    assert!(crates.len() >= 4, "{crates:?}");
    for name in crates {
        let page = format!("docs/rotators/{name}.md");
        let text = std::fs::read_to_string(root.join(&page))
            .unwrap_or_else(|e| panic!("{name} has no page {page}: {e}"));
        let threats = text
            .split("\n## Threats")
            .nth(1)
            .unwrap_or_else(|| panic!("{page} has no `## Threats` section"));
        let section = threats.split("\n## ").next().unwrap();
        assert!(
            section.lines().filter(|l| l.starts_with("| ")).count() >= 3,
            "{page}: the Threats section has no table"
        );
        assert!(
            readme.contains(&format!("]({page})")),
            "README.md does not link {page}"
        );
    }
}
