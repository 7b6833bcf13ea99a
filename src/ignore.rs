//! PLACEHOLDER until the real module lands.
#![allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(String);
impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for PatternError {}
pub fn parse_dockerignore(c: &[u8]) -> Result<Vec<String>, PatternError> {
    Ok(std::str::from_utf8(c)
        .map_err(|_| PatternError("utf8".into()))?
        .lines()
        .filter_map(normalize_pattern)
        .collect())
}
pub fn normalize_pattern(line: &str) -> Option<String> {
    let t = line.trim();
    if t.is_empty() || line.starts_with('#') {
        None
    } else {
        Some(t.trim_start_matches('/').to_string())
    }
}
#[derive(Debug, Clone)]
pub struct Matcher(Vec<String>);
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirState;
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Include(DirState),
    Exclude,
    Descend(DirState),
}
impl Matcher {
    pub fn new(p: &[String]) -> Result<Matcher, PatternError> {
        Ok(Matcher(p.to_vec()))
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn root_state(&self) -> DirState {
        DirState
    }
    pub fn decide(&self, path: &[u8], _d: bool, _p: &DirState) -> Decision {
        if self.0.iter().any(|p| p.as_bytes() == path) {
            Decision::Exclude
        } else {
            Decision::Include(DirState)
        }
    }
}
