//! `${VAR}`, `${VAR:-default}` and `$$` substitution on the raw text of a TOML file.
//!
//! Substitution happens inside string literals only (values and quoted keys), never in comments or
//! bare TOML syntax, so a `${...}` in a comment is harmless and a variable cannot inject TOML
//! structure: a substituted value is escaped for the kind of string it lands in.
//!
//! - `${VAR}`: the value of VAR (may be empty); an error if VAR is not set.
//! - `${VAR:-default}`: the value of VAR if set and non-empty, else `default` (file text, up to `}`).
//! - `$$`: a literal `$`. Any other `$` is kept as is.

/// A substitution failure at a 1-based line of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InterpolateError {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Plain,
    Comment,
    /// `"..."`
    Basic,
    /// `'...'`
    Literal,
    /// `"""..."""`
    MlBasic,
    /// `'''...'''`
    MlLiteral,
}

/// Substitute variables in `text`, looking them up with `env`.
pub(crate) fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, InterpolateError> {
    let mut out = String::with_capacity(text.len());
    let mut ctx = Ctx::Plain;
    let mut line = 1;
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        let rest = &text[i..];
        // Number of bytes copied verbatim from `text` in this step.
        let mut take = c.len_utf8();
        match ctx {
            Ctx::Plain => {
                if c == '#' {
                    ctx = Ctx::Comment;
                } else if rest.starts_with("\"\"\"") {
                    ctx = Ctx::MlBasic;
                    take = 3;
                } else if rest.starts_with("'''") {
                    ctx = Ctx::MlLiteral;
                    take = 3;
                } else if c == '"' {
                    ctx = Ctx::Basic;
                } else if c == '\'' {
                    ctx = Ctx::Literal;
                }
            }
            Ctx::Comment => {
                if c == '\n' {
                    ctx = Ctx::Plain;
                }
            }
            Ctx::Basic | Ctx::Literal | Ctx::MlBasic | Ctx::MlLiteral => {
                let quote = if matches!(ctx, Ctx::Basic | Ctx::MlBasic) { '"' } else { '\'' };
                let multi_line = matches!(ctx, Ctx::MlBasic | Ctx::MlLiteral);
                if c == '$' {
                    let (consumed, value) = dollar(rest, ctx, line, env)?;
                    out.push_str(&value);
                    i += consumed;
                    continue;
                } else if c == '\\' && quote == '"' {
                    // An escape: copy the backslash and the escaped character together.
                    take += rest[1..].chars().next().map_or(0, char::len_utf8);
                } else if c == quote && !multi_line {
                    ctx = Ctx::Plain;
                } else if c == '\n' && !multi_line {
                    ctx = Ctx::Plain; // unterminated string: leave the error to the TOML parser
                } else if multi_line && rest.starts_with(&quote.to_string().repeat(3)) {
                    // Up to two extra quotes may precede the closing delimiter.
                    take = rest.chars().take_while(|&q| q == quote).count();
                    ctx = Ctx::Plain;
                }
            }
        }
        let chunk = &text[i..i + take];
        line += chunk.matches('\n').count();
        out.push_str(chunk);
        i += take;
    }
    Ok(out)
}

/// Handle a `$` at the start of `rest` inside a string; returns the bytes consumed and the text to
/// emit (already encoded for the string kind `ctx`).
fn dollar(
    rest: &str,
    ctx: Ctx,
    line: usize,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(usize, String), InterpolateError> {
    let err = |message: String| InterpolateError { line, message };
    if rest.starts_with("$$") {
        return Ok((2, "$".to_string()));
    }
    if !rest.starts_with("${") {
        return Ok((1, "$".to_string()));
    }
    let body = &rest[2..];
    let close = body
        .find(['}', '\n'])
        .filter(|&end| body[end..].starts_with('}'))
        .ok_or_else(|| err("unterminated `${` (expected `${NAME}` or `${NAME:-default}`)".into()))?;
    let inner = &body[..close];
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(err(format!(
            "invalid variable name `{name}` in `${{{inner}}}` (expected `${{NAME}}` or `${{NAME:-default}}`)"
        )));
    }
    let consumed = 2 + close + 1;
    let value = match (env(name), default) {
        (Some(v), Some(_)) if !v.is_empty() => v,
        (_, Some(default)) => {
            if default.contains("${") {
                return Err(err(format!("nested `${{` in the default of `${{{inner}}}` is not supported")));
            }
            // The default is file text, already written for this kind of string.
            return Ok((consumed, default.replace("$$", "$")));
        }
        (Some(v), None) => v,
        (None, None) => {
            return Err(err(format!(
                "environment variable {name} is not set (write `${{{name}:-default}}` to give a default)"
            )))
        }
    };
    encode(&value, ctx)
        .map(|v| (consumed, v))
        .map_err(|problem| err(format!("the value of environment variable {name} {problem}")))
}

/// Encode a substituted value so the string it lands in keeps exactly that content.
fn encode(value: &str, ctx: Ctx) -> Result<String, &'static str> {
    match ctx {
        Ctx::Literal if value.contains('\'') || value.chars().any(|c| c.is_control() && c != '\t') => {
            Err("contains ' or a control character, which a '...' string cannot hold; use \"...\"")
        }
        Ctx::MlLiteral if value.contains("'''") => {
            Err("contains ''', which a '''...''' string cannot hold; use \"...\"")
        }
        Ctx::Literal | Ctx::MlLiteral => Ok(value.to_string()),
        _ => {
            let mut out = String::with_capacity(value.len());
            for c in value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push('\t'),
                    c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
                    c => out.push(c),
                }
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("redis.local".into()),
            "EMPTY" => Some(String::new()),
            "QUOTED" => Some("a\"b\\c\nd".into()),
            "APOS" => Some("it's".into()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<String, InterpolateError> {
        interpolate(text, &env)
    }

    #[test]
    fn set_variable_is_substituted() {
        assert_eq!(run(r#"url = "redis://${HOST}:6379""#).expect("ok"), r#"url = "redis://redis.local:6379""#);
        assert_eq!(run("url = '${HOST}'").expect("ok"), "url = 'redis.local'");
    }

    #[test]
    fn default_applies_when_unset_or_empty() {
        assert_eq!(run(r#"id = "${NODE:-node-1}""#).expect("ok"), r#"id = "node-1""#);
        assert_eq!(run(r#"id = "${EMPTY:-node-1}""#).expect("ok"), r#"id = "node-1""#);
        assert_eq!(run(r#"id = "${HOST:-node-1}""#).expect("ok"), r#"id = "redis.local""#);
        assert_eq!(run(r#"url = "${NODE:-}""#).expect("ok"), r#"url = """#);
    }

    #[test]
    fn set_but_empty_without_default_is_empty() {
        assert_eq!(run(r#"x = "a${EMPTY}b""#).expect("ok"), r#"x = "ab""#);
    }

    #[test]
    fn double_dollar_is_a_literal_dollar() {
        assert_eq!(run(r#"x = "cost $$5 and $${HOST}""#).expect("ok"), r#"x = "cost $5 and ${HOST}""#);
        assert_eq!(run(r#"x = "${NODE:-a$$b}""#).expect("ok"), r#"x = "a$b""#);
        assert_eq!(run(r#"x = "lone $ sign""#).expect("ok"), r#"x = "lone $ sign""#);
    }

    #[test]
    fn unset_without_default_names_variable_and_line() {
        let e = run("a = 1\n\nb = \"${MISSING_VAR}\"\n").expect_err("must fail");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("MISSING_VAR is not set"), "{}", e.message);
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(run(r#"x = "${HOST""#).expect_err("unterminated").message.contains("unterminated"));
        assert!(run(r#"x = "${1X}""#).expect_err("bad name").message.contains("invalid variable name `1X`"));
        assert!(run(r#"x = "${HOST:x}""#).expect_err("bad sep").message.contains("invalid variable name"));
        assert!(run(r#"x = "${A:-${B}}""#).expect_err("nested").message.contains("nested"));
    }

    #[test]
    fn comments_and_bare_syntax_are_untouched() {
        let text = "# uses ${UNSET_IN_COMMENT}\nx = 1 # ${ALSO_UNSET}\n";
        assert_eq!(run(text).expect("ok"), text);
        // A `#` inside a string does not start a comment.
        assert_eq!(run(r##"x = "#${HOST}""##).expect("ok"), r##"x = "#redis.local""##);
    }

    #[test]
    fn values_are_escaped_for_basic_strings() {
        let out = run(r#"x = "${QUOTED}""#).expect("ok");
        assert_eq!(out, r#"x = "a\"b\\c\nd""#);
        let parsed: toml::Table = toml::from_str(&out).expect("valid toml");
        assert_eq!(parsed["x"].as_str(), Some("a\"b\\c\nd"));
    }

    #[test]
    fn escaped_quotes_do_not_end_a_basic_string() {
        assert_eq!(run(r#"x = "a\"${HOST}" # ${NOPE}"#).expect("ok"), r#"x = "a\"redis.local" # ${NOPE}"#);
    }

    #[test]
    fn literal_strings_reject_unrepresentable_values() {
        let e = run("x = '${APOS}'").expect_err("apostrophe");
        assert!(e.message.contains("APOS"), "{}", e.message);
        assert_eq!(run("x = '''${APOS}'''").expect("ok"), "x = '''it's'''");
    }

    #[test]
    fn multi_line_strings_track_lines_and_close() {
        let text = "x = \"\"\"\none ${HOST}\n\"\"\"\ny = \"${NOPE}\"";
        let e = run(text).expect_err("unset on line 4");
        assert_eq!(e.line, 4);
        let text = "x = '''\n${HOST}'''\n# ${NOPE}\n";
        assert_eq!(run(text).expect("ok"), "x = '''\nredis.local'''\n# ${NOPE}\n");
    }
}
