//! SCIM filter expressions (RFC 7644 §3.4.2.2) and PATCH paths (RFC 7644 §3.5.2).
//!
//! Protocol only: this module parses text into a typed AST, prints it back, and evaluates it
//! against JSON in memory (used by the PATCH engine for value-path filters). Lowering to SQL lives
//! in `store::filter_sql`.

use std::borrow::Cow;
use std::fmt;
use std::str::CharIndices;

use serde_json::Value;

/// Filters nested deeper than this are refused, so a hostile filter cannot exhaust the stack.
pub const MAX_FILTER_DEPTH: usize = 32;
/// The parsed tree may be at most this deep (long `or` chains such as
/// `id eq "1" or id eq "2" or …` count one level per term); everything that walks the tree
/// recursively relies on this bound.
pub const MAX_TREE_DEPTH: usize = 256;
/// Filters longer than this (in bytes) are refused before parsing.
pub const MAX_FILTER_LEN: usize = 8 * 1024;

/// An attribute reference: `[urn:]name[.subAttr]`, e.g. `name.givenName` or
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`.
/// Names are kept as written; case-insensitive resolution happens against the schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub_attr: Option<String>,
}

/// Comparison operators of RFC 7644 §3.4.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A literal on the right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: CompValue,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work"]`: the inner filter's paths are relative to one element.
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
}

/// A PATCH operation path: `attrPath` or `valuePath[.subAttr]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    /// The filter inside `[...]`, if any. When present, `attr.sub_attr` is `None`.
    pub filter: Option<Filter>,
    /// The sub-attribute after `]`, e.g. `value` in `emails[type eq "work"].value`.
    pub sub_attr: Option<String>,
}

/// A parse failure, with the byte offset where it was detected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter at position {position}: {message}")]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

impl FilterError {
    fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------------------------

/// Parses a SCIM filter expression (RFC 7644 §3.4.2.2), e.g. `userName eq "bjensen"`.
///
/// Keywords (`and`, `or`, `not`, `pr` and the comparison operators) and the literals `true`,
/// `false` and `null` are case-insensitive; attribute names are kept as written. Precedence is
/// `not` > `and` > `or`, and `and`/`or` associate to the left.
///
/// Input longer than [`MAX_FILTER_LEN`] bytes, or nested deeper than [`MAX_FILTER_DEPTH`]
/// levels, is refused. Nesting counts both the depth of the resulting tree (every `and`, `or`,
/// `not` and value path adds a level) and the number of simultaneously open `(`/`[` groups, so
/// `((((a pr))))` is as deep as it looks even though it parses to a single node.
pub fn parse_filter(input: &str) -> Result<Filter, FilterError> {
    let mut parser = Parser::new(input)?;
    if parser.peek()?.kind == TokenKind::End {
        return Err(FilterError::new(parser.peek()?.start, "empty filter"));
    }
    let node = parser.parse_or()?;
    parser.expect_filter_end()?;
    Ok(node.filter)
}

/// Parses a PATCH operation path (RFC 7644 §3.5.2): `attrPath` or `valuePath [subAttr]`, e.g.
/// `name.givenName`, `members[value eq "2819c223"]` or `emails[type eq "work"].value`.
///
/// A path naming an extension attribute is URN-qualified, e.g.
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`; like in filters,
/// the URN is everything up to the last `:`.
pub fn parse_patch_path(input: &str) -> Result<PatchPath, FilterError> {
    let mut parser = Parser::new(input)?;
    let token = parser.bump()?;
    let attr = match token.kind {
        TokenKind::Word(word) => parse_attr_path(word, token.start)?,
        TokenKind::End => return Err(FilterError::new(token.start, "empty path")),
        other => {
            return Err(FilterError::new(
                token.start,
                format!("expected an attribute path, found {}", other.describe()),
            ))
        }
    };
    if parser.peek()?.kind != TokenKind::LBracket {
        parser.expect_path_end()?;
        return Ok(PatchPath {
            attr,
            filter: None,
            sub_attr: None,
        });
    }
    if attr.sub_attr.is_some() {
        // `PatchPath` keeps the sub-attribute after `]`; one before `[` has nowhere to go, and
        // SCIM has no multi-valued attributes below a sub-attribute anyway.
        return Err(FilterError::new(
            parser.peek()?.start,
            format!("a value filter cannot follow the sub-attribute in '{attr}'"),
        ));
    }
    let filter = parser.parse_value_filter()?;
    let sub_attr = parser.parse_trailing_sub_attr()?;
    parser.expect_path_end()?;
    Ok(PatchPath {
        attr,
        filter: Some(filter.filter),
        sub_attr,
    })
}

// ---------------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------------

/// What the tokenizer produces. Attribute paths, keywords, operators, numbers and the literals
/// `true`/`false`/`null` are all just [`TokenKind::Word`]s: which one a word is depends on where
/// it appears (an attribute may well be called `not` or `pr`), so the parser decides.
#[derive(Debug, Clone, PartialEq)]
enum TokenKind<'a> {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Word(&'a str),
    Str(String),
    End,
}

impl TokenKind<'_> {
    /// How the token is named in error messages.
    fn describe(&self) -> String {
        match self {
            TokenKind::LParen => "'('".to_string(),
            TokenKind::RParen => "')'".to_string(),
            TokenKind::LBracket => "'['".to_string(),
            TokenKind::RBracket => "']'".to_string(),
            TokenKind::Word(word) => format!("'{word}'"),
            TokenKind::Str(_) => "a string".to_string(),
            TokenKind::End => "the end of the input".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
struct Token<'a> {
    kind: TokenKind<'a>,
    /// Byte offset of the token's first character.
    start: usize,
}

/// Bytes that make up a [`TokenKind::Word`]: attribute-name characters plus `.` and `:` (for
/// sub-attributes and schema URNs), `$` (for `$ref`) and `+` (for exponents like `1e+5`).
/// All ASCII, so a word always starts and ends on a `char` boundary.
fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b':' | b'$' | b'+')
}

/// JSON's insignificant whitespace; the RFC only shows single spaces, but clients (and humans)
/// send more.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

struct Lexer<'a> {
    input: &'a str,
    /// Byte offset of the next unread character; always on a `char` boundary.
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn next_token(&mut self) -> Result<Token<'a>, FilterError> {
        let bytes = self.input.as_bytes();
        while bytes.get(self.pos).copied().is_some_and(is_space) {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(&byte) = bytes.get(start) else {
            return Ok(Token {
                kind: TokenKind::End,
                start,
            });
        };
        let kind = match byte {
            b'(' => TokenKind::LParen,
            b')' => TokenKind::RParen,
            b'[' => TokenKind::LBracket,
            b']' => TokenKind::RBracket,
            b'"' => {
                let (text, end) = lex_string(self.input, start)?;
                self.pos = end;
                return Ok(Token {
                    kind: TokenKind::Str(text),
                    start,
                });
            }
            b if is_word_byte(b) => {
                let len = bytes[start..].iter().take_while(|&&b| is_word_byte(b)).count();
                self.pos = start + len;
                return Ok(Token {
                    kind: TokenKind::Word(self.slice(start, self.pos)),
                    start,
                });
            }
            b'\'' => return Err(FilterError::new(start, "strings must be enclosed in double quotes")),
            _ => {
                let found = self.input.get(start..).and_then(|rest| rest.chars().next());
                let found = found.map(|c| c.escape_debug().to_string()).unwrap_or_default();
                return Err(FilterError::new(start, format!("unexpected character '{found}'")));
            }
        };
        self.pos = start + 1;
        Ok(Token { kind, start })
    }

    fn slice(&self, start: usize, end: usize) -> &'a str {
        self.input.get(start..end).unwrap_or_default()
    }
}

/// Reads the JSON string literal whose opening quote is at byte `start`, returning its decoded
/// text and the byte offset just past the closing quote.
fn lex_string(input: &str, start: usize) -> Result<(String, usize), FilterError> {
    let body_start = start + 1;
    let mut chars = input.get(body_start..).unwrap_or_default().char_indices();
    let mut text = String::new();
    while let Some((offset, c)) = chars.next() {
        match c {
            '"' => return Ok((text, body_start + offset + 1)),
            // A `\` right before the end of input is an unterminated string, not a bad escape.
            '\\' if chars.as_str().is_empty() => break,
            '\\' => text.push(lex_escape(&mut chars, body_start + offset)?),
            // RFC 8259 wants control characters escaped, but refusing a raw tab buys nothing.
            c => text.push(c),
        }
    }
    Err(FilterError::new(start, "unterminated string"))
}

/// Decodes the escape sequence after the `\` at byte `escape_start` (where errors point).
fn lex_escape(chars: &mut CharIndices<'_>, escape_start: usize) -> Result<char, FilterError> {
    let Some((_, c)) = chars.next() else {
        return Err(FilterError::new(escape_start, "unterminated string"));
    };
    Ok(match c {
        '"' => '"',
        '\\' => '\\',
        '/' => '/',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'u' => return lex_unicode_escape(chars, escape_start),
        other => {
            return Err(FilterError::new(
                escape_start,
                format!("invalid escape '\\{}' in string", other.escape_debug()),
            ))
        }
    })
}

/// Decodes `XXXX` after `\u`. Characters outside the BMP arrive as a UTF-16 surrogate pair
/// (`\uD83D\uDE00`), which must be joined; a lone surrogate cannot be put in a Rust string.
fn lex_unicode_escape(chars: &mut CharIndices<'_>, escape_start: usize) -> Result<char, FilterError> {
    let unpaired = || FilterError::new(escape_start, "unpaired UTF-16 surrogate in \\u escape");
    let code = match read_hex4(chars, escape_start)? {
        high @ 0xD800..=0xDBFF => {
            let low = match (chars.next(), chars.next()) {
                (Some((_, '\\')), Some((_, 'u'))) => read_hex4(chars, escape_start)?,
                _ => return Err(unpaired()),
            };
            if !(0xDC00..=0xDFFF).contains(&low) {
                return Err(unpaired());
            }
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        }
        0xDC00..=0xDFFF => return Err(unpaired()),
        code => code,
    };
    // Cannot fail: surrogates are handled above and four hex digits stay below 0x110000.
    char::from_u32(code).ok_or_else(|| FilterError::new(escape_start, "invalid \\u escape in string"))
}

fn read_hex4(chars: &mut CharIndices<'_>, escape_start: usize) -> Result<u32, FilterError> {
    let mut code = 0;
    for _ in 0..4 {
        let digit = chars.next().and_then(|(_, c)| c.to_digit(16));
        let Some(digit) = digit else {
            return Err(FilterError::new(
                escape_start,
                "invalid \\u escape in string: expected four hex digits",
            ));
        };
        code = code * 16 + digit;
    }
    Ok(code)
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

/// A parsed (sub)filter together with its tree depth, so depth checks need no second walk.
struct Node {
    filter: Filter,
    depth: usize,
}

impl Node {
    fn leaf(filter: Filter) -> Self {
        Node { filter, depth: 1 }
    }
}

/// Recursive descent over the RFC 7644 grammar, rewritten with the usual precedence levels:
///
/// ```text
/// or_expr   = and_expr *("or" and_expr)
/// and_expr  = unary *("and" unary)
/// unary     = "not" "(" or_expr ")" / "(" or_expr ")" / attr_expr
/// attr_expr = attrPath ("pr" / compareOp compValue / "[" or_expr "]")
/// ```
///
/// Only `(`, `not (` and `[` recurse, and each is counted in `open_groups` before recursing,
/// so the stack depth is bounded by [`MAX_FILTER_DEPTH`] whatever the input.
struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token<'a>>,
    open_groups: usize,
    /// Inside `[...]`, where RFC 7644's `valFilter` does not allow another value path.
    in_value_path: bool,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Result<Self, FilterError> {
        if input.len() > MAX_FILTER_LEN {
            return Err(FilterError::new(
                MAX_FILTER_LEN,
                format!("filter longer than {MAX_FILTER_LEN} bytes"),
            ));
        }
        Ok(Parser {
            lexer: Lexer { input, pos: 0 },
            peeked: None,
            open_groups: 0,
            in_value_path: false,
        })
    }

    fn peek(&mut self) -> Result<&Token<'a>, FilterError> {
        let token = match self.peeked.take() {
            Some(token) => token,
            None => self.lexer.next_token()?,
        };
        Ok(self.peeked.insert(token))
    }

    fn bump(&mut self) -> Result<Token<'a>, FilterError> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lexer.next_token(),
        }
    }

    /// Is the next token the (case-insensitive) keyword `keyword`?
    fn peek_keyword(&mut self, keyword: &str) -> Result<bool, FilterError> {
        Ok(matches!(self.peek()?.kind, TokenKind::Word(w) if w.eq_ignore_ascii_case(keyword)))
    }

    fn parse_or(&mut self) -> Result<Node, FilterError> {
        let mut left = self.parse_and()?;
        while self.peek_keyword("or")? {
            let position = self.bump()?.start;
            let right = self.parse_and()?;
            left = join(Filter::Or, left, right, position)?;
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Node, FilterError> {
        let mut left = self.parse_unary()?;
        while self.peek_keyword("and")? {
            let position = self.bump()?.start;
            let right = self.parse_unary()?;
            left = join(Filter::And, left, right, position)?;
        }
        Ok(left)
    }

    fn parse_unary(&mut self) -> Result<Node, FilterError> {
        let token = self.bump()?;
        match token.kind {
            TokenKind::LParen => self.parse_group(token.start),
            // `not` is only the operator when a `(` follows; otherwise it is an attribute name.
            TokenKind::Word(word) if word.eq_ignore_ascii_case("not") && self.peek()?.kind == TokenKind::LParen => {
                let open = self.bump()?.start;
                let inner = self.parse_group(open)?;
                let depth = checked_depth(inner.depth + 1, token.start)?;
                Ok(Node {
                    filter: Filter::Not(Box::new(inner.filter)),
                    depth,
                })
            }
            TokenKind::Word(word) => self.parse_attr_expr(word, token.start),
            TokenKind::RParen => Err(FilterError::new(token.start, "unexpected ')'")),
            TokenKind::RBracket => Err(FilterError::new(token.start, "unexpected ']'")),
            TokenKind::End => Err(FilterError::new(
                token.start,
                "unexpected end of the filter: expected an attribute path or '('",
            )),
            other => Err(FilterError::new(
                token.start,
                format!("expected an attribute path or '(', found {}", other.describe()),
            )),
        }
    }

    /// Parses `filter )` after a `(` at byte `open`.
    fn parse_group(&mut self, open: usize) -> Result<Node, FilterError> {
        self.enter_group(open)?;
        let inner = self.parse_or()?;
        self.expect_close(TokenKind::RParen, open)?;
        self.open_groups -= 1;
        Ok(inner)
    }

    fn enter_group(&mut self, position: usize) -> Result<(), FilterError> {
        if self.open_groups >= MAX_FILTER_DEPTH {
            return Err(too_deep(position));
        }
        self.open_groups += 1;
        Ok(())
    }

    /// Consumes the `)` or `]` closing the group opened at byte `open`.
    fn expect_close(&mut self, close: TokenKind<'a>, open: usize) -> Result<(), FilterError> {
        let token = self.bump()?;
        if token.kind == close {
            return Ok(());
        }
        let close_text = close.describe();
        let message = match token.kind {
            TokenKind::End => {
                format!("missing {close_text} to close the group opened at position {open}")
            }
            other => format!("expected 'and', 'or' or {close_text}, found {}", other.describe()),
        };
        Err(FilterError::new(token.start, message))
    }

    /// Parses what follows an attribute path: `pr`, a comparison or a value filter.
    fn parse_attr_expr(&mut self, word: &'a str, start: usize) -> Result<Node, FilterError> {
        let path = parse_attr_path(word, start)?;
        let next = self.peek()?;
        let operator = match next.kind {
            TokenKind::LBracket => {
                let inner = self.parse_value_filter()?;
                let depth = checked_depth(inner.depth + 1, start)?;
                let filter = Filter::ValuePath {
                    path,
                    filter: Box::new(inner.filter),
                };
                return Ok(Node { filter, depth });
            }
            TokenKind::Word(operator) => operator,
            ref other => {
                return Err(FilterError::new(
                    next.start,
                    format!(
                        "expected a comparison operator after '{word}', found {}",
                        other.describe()
                    ),
                ))
            }
        };
        let operator_start = next.start;
        if operator.eq_ignore_ascii_case("pr") {
            self.bump()?;
            self.refuse_value_after_pr()?;
            return Ok(Node::leaf(Filter::Present(path)));
        }
        let Some(op) = CompareOp::from_keyword(operator) else {
            return Err(FilterError::new(
                operator_start,
                format!("expected a comparison operator after '{word}', found '{operator}'"),
            ));
        };
        self.bump()?;
        let value = self.parse_comp_value(operator)?;
        Ok(Node::leaf(Filter::Compare { path, op, value }))
    }

    /// `title pr "x"` is a common mistake; say so instead of "expected 'and' or 'or'".
    fn refuse_value_after_pr(&mut self) -> Result<(), FilterError> {
        let next = self.peek()?;
        let is_value = match next.kind {
            TokenKind::Str(_) => true,
            TokenKind::Word(word) => parse_literal(word, next.start).is_ok(),
            _ => false,
        };
        if is_value {
            return Err(FilterError::new(next.start, "the 'pr' operator does not take a value"));
        }
        Ok(())
    }

    fn parse_comp_value(&mut self, operator: &str) -> Result<CompValue, FilterError> {
        let token = self.bump()?;
        match token.kind {
            TokenKind::Str(text) => Ok(CompValue::String(text)),
            TokenKind::Word(word) => parse_literal(word, token.start),
            other => Err(FilterError::new(
                token.start,
                format!("expected a value after '{operator}', found {}", other.describe()),
            )),
        }
    }

    /// Parses `[valFilter]`, the next token being `[`.
    fn parse_value_filter(&mut self) -> Result<Node, FilterError> {
        let open = self.bump()?.start;
        if self.in_value_path {
            return Err(FilterError::new(open, "value paths cannot be nested"));
        }
        self.enter_group(open)?;
        if self.peek()?.kind == TokenKind::RBracket {
            return Err(FilterError::new(self.peek()?.start, "empty value filter '[]'"));
        }
        self.in_value_path = true;
        let inner = self.parse_or()?;
        self.in_value_path = false;
        self.expect_close(TokenKind::RBracket, open)?;
        self.open_groups -= 1;
        Ok(inner)
    }

    /// Parses the optional `.subAttr` after a PATCH path's `]`.
    fn parse_trailing_sub_attr(&mut self) -> Result<Option<String>, FilterError> {
        let token = self.peek()?;
        let TokenKind::Word(word) = token.kind else {
            return Ok(None);
        };
        let start = token.start;
        let Some(name) = word.strip_prefix('.') else {
            return Ok(None);
        };
        check_attr_name(name, start + 1)?;
        self.bump()?;
        Ok(Some(name.to_string()))
    }

    fn expect_filter_end(&mut self) -> Result<(), FilterError> {
        let token = self.bump()?;
        let message = match token.kind {
            TokenKind::End => return Ok(()),
            TokenKind::RParen => "unexpected ')'".to_string(),
            TokenKind::RBracket => "unexpected ']'".to_string(),
            TokenKind::Word(word) if word.starts_with('.') => {
                format!("unexpected '{word}': a filter's value path cannot have a sub-attribute")
            }
            other => {
                format!(
                    "expected 'and', 'or' or the end of the filter, found {}",
                    other.describe()
                )
            }
        };
        Err(FilterError::new(token.start, message))
    }

    fn expect_path_end(&mut self) -> Result<(), FilterError> {
        let token = self.bump()?;
        if token.kind == TokenKind::End {
            return Ok(());
        }
        Err(FilterError::new(
            token.start,
            format!("expected the end of the path, found {}", token.kind.describe()),
        ))
    }
}

/// Builds `And`/`Or`, refusing trees deeper than [`MAX_FILTER_DEPTH`].
fn join(
    make: fn(Box<Filter>, Box<Filter>) -> Filter,
    left: Node,
    right: Node,
    position: usize,
) -> Result<Node, FilterError> {
    let depth = checked_depth(left.depth.max(right.depth) + 1, position)?;
    Ok(Node {
        filter: make(Box::new(left.filter), Box::new(right.filter)),
        depth,
    })
}

fn checked_depth(depth: usize, position: usize) -> Result<usize, FilterError> {
    if depth > MAX_TREE_DEPTH {
        return Err(FilterError::new(
            position,
            format!("filter has more than {MAX_TREE_DEPTH} nested terms"),
        ));
    }
    Ok(depth)
}

fn too_deep(position: usize) -> FilterError {
    FilterError::new(position, format!("filter nested deeper than {MAX_FILTER_DEPTH} levels"))
}

/// Interprets a word in value position: `true`, `false`, `null` (any case) or a JSON number.
fn parse_literal(word: &str, start: usize) -> Result<CompValue, FilterError> {
    if word.eq_ignore_ascii_case("true") {
        return Ok(CompValue::Bool(true));
    }
    if word.eq_ignore_ascii_case("false") {
        return Ok(CompValue::Bool(false));
    }
    if word.eq_ignore_ascii_case("null") {
        return Ok(CompValue::Null);
    }
    if word.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        // serde_json applies the strict JSON number grammar (no `+1`, `01`, `1.` or `.5`).
        let number = word
            .parse::<serde_json::Number>()
            .map_err(|_| FilterError::new(start, format!("invalid number '{word}'")))?;
        // But its float parsing is only best-effort (`2.0e30` came out one ulp low, so the
        // printed filter parsed back to a different value; found by `fuzz/`): take the value
        // from std's correctly rounded parser.
        let number = match word.parse::<f64>() {
            Ok(f) if number.is_f64() => serde_json::Number::from_f64(f).unwrap_or(number),
            _ => number,
        };
        return Ok(CompValue::Number(number));
    }
    Err(FilterError::new(
        start,
        format!("expected a value (a string, number, true, false or null), found '{word}'"),
    ))
}

const URN_PREFIX: &str = "urn:";

/// Parses `[urn:]name[.subAttr]` from a word starting at byte `start`.
///
/// A word starting with `urn:` carries a schema URN, which runs to the *last* `:` (URNs contain
/// both colons and dots, e.g. `...:core:2.0:User`); attribute names contain neither.
fn parse_attr_path(word: &str, start: usize) -> Result<AttrPath, FilterError> {
    let has_urn = word
        .get(..URN_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(URN_PREFIX));
    let (urn, rest_start) = match word.rfind(':') {
        Some(colon) if has_urn && colon > URN_PREFIX.len() => (Some(&word[..colon]), colon + 1),
        _ if has_urn => {
            return Err(FilterError::new(
                start,
                format!("'{word}' is not a schema URN followed by an attribute name"),
            ))
        }
        _ => (None, 0),
    };
    let rest = &word[rest_start..];
    let (name, sub_attr) = match rest.split_once('.') {
        Some((name, sub_attr)) => (name, Some(sub_attr)),
        None => (rest, None),
    };
    check_attr_name(name, start + rest_start)?;
    if let Some(sub_attr) = sub_attr {
        let sub_start = start + rest_start + name.len() + 1;
        if let Some(dot) = sub_attr.find('.') {
            return Err(FilterError::new(
                sub_start + dot,
                format!("'{word}' has more than one sub-attribute"),
            ));
        }
        check_attr_name(sub_attr, sub_start)?;
    }
    Ok(AttrPath {
        urn: urn.map(str::to_string),
        name: name.to_string(),
        sub_attr: sub_attr.map(str::to_string),
    })
}

/// Checks RFC 7643's `ATTRNAME = ALPHA *(nameChar)` (or the literal `$ref`); `start` is the
/// byte offset of `name` in the input, for the error position.
fn check_attr_name(name: &str, start: usize) -> Result<(), FilterError> {
    if name == "$ref" {
        return Ok(());
    }
    if name.is_empty() {
        return Err(FilterError::new(start, "expected an attribute name"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(FilterError::new(
            start,
            format!("'{name}' is not a valid attribute name: it must start with a letter"),
        ));
    }
    let bad = name.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    if let Some(offset) = bad {
        let c = name[offset..].chars().next().unwrap_or('?');
        return Err(FilterError::new(
            start + offset,
            format!("invalid character '{c}' in attribute name '{name}'"),
        ));
    }
    Ok(())
}

impl CompareOp {
    const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    /// The operator's keyword as RFC 7644 spells it (lowercase).
    fn keyword(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    fn from_keyword(word: &str) -> Option<CompareOp> {
        Self::ALL.into_iter().find(|op| op.keyword().eq_ignore_ascii_case(word))
    }
}

// ---------------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------------

impl fmt::Display for AttrPath {
    /// `[urn:]name[.subAttr]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub_attr) = &self.sub_attr {
            write!(f, ".{sub_attr}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CompareOp {
    /// The lowercase keyword, e.g. `eq`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

impl fmt::Display for CompValue {
    /// The value as JSON: `null`, `true`, `42`, `"text with \"quotes\""`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::String(s) => f.write_str(&serde_json::to_string(s).map_err(|_| fmt::Error)?),
        }
    }
}

impl fmt::Display for Filter {
    /// Canonical text that [`parse_filter`] turns back into an equal `Filter`: keywords in
    /// lowercase, single spaces, and parentheses around every `and`/`or` that is an operand of
    /// another `and`/`or` (so the tree shape never depends on precedence rules) — except the
    /// left operand of the same operator: `a and b and c` is how the parser's left-associative
    /// chain reads, and parenthesising it would nest one level per term, past
    /// [`MAX_FILTER_DEPTH`] for a long chain (found by fuzzing).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::And(left, right) => write_logical(f, left, "and", right),
            Filter::Or(left, right) => write_logical(f, left, "or", right),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
        }
    }
}

fn write_logical(f: &mut fmt::Formatter<'_>, left: &Filter, op: &str, right: &Filter) -> fmt::Result {
    let same_op_chain = matches!((left, op), (Filter::And(..), "and") | (Filter::Or(..), "or"));
    if same_op_chain {
        write!(f, "{left}")?;
    } else {
        write_operand(f, left)?;
    }
    write!(f, " {op} ")?;
    write_operand(f, right)
}

fn write_operand(f: &mut fmt::Formatter<'_>, operand: &Filter) -> fmt::Result {
    match operand {
        Filter::And(..) | Filter::Or(..) => write!(f, "({operand})"),
        _ => write!(f, "{operand}"),
    }
}

impl fmt::Display for PatchPath {
    /// `attrPath`, or `attrPath[filter][.subAttr]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub_attr) = &self.sub_attr {
            write!(f, ".{sub_attr}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

impl Filter {
    /// Does `resource` (a SCIM resource as JSON, or one element of a multi-valued attribute)
    /// match this filter?
    ///
    /// Attribute names match object keys case-insensitively. A URN-qualified path is looked up
    /// inside the object stored under that URN when there is one (extension attributes), else at
    /// the top level (core attributes may be qualified too). Multi-valued attributes match when
    /// any element does; without a sub-attribute, an element that is an object is compared
    /// through its `value` sub-attribute (`emails co "example.com"`).
    ///
    /// `case_exact` says whether string comparisons on an attribute are case-sensitive
    /// (RFC 7643 `caseExact`). Inside a value path it receives the element's attribute qualified
    /// by the outer one, e.g. `emails.type` for `emails[type eq "work"]`.
    pub fn matches(&self, resource: &Value, case_exact: &dyn Fn(&AttrPath) -> bool) -> bool {
        match self {
            Filter::Compare { path, op, value } => compare_at(resource, path, *op, value, case_exact(path)),
            Filter::Present(path) => values_at(resource, path).into_iter().any(is_present),
            Filter::And(left, right) => left.matches(resource, case_exact) && right.matches(resource, case_exact),
            Filter::Or(left, right) => left.matches(resource, case_exact) || right.matches(resource, case_exact),
            Filter::Not(inner) => !inner.matches(resource, case_exact),
            Filter::ValuePath { path, filter } => {
                let element_case_exact = |inner: &AttrPath| case_exact(&qualify(path, inner));
                values_at(resource, path)
                    .into_iter()
                    .flat_map(elements)
                    .filter(|element| element.is_object())
                    .any(|element| filter.matches(element, &element_case_exact))
            }
        }
    }
}

/// `emails` + `type` → `emails.type`, so `case_exact` can find the sub-attribute's definition.
/// Paths that cannot be expressed in one `AttrPath` are passed through unchanged.
fn qualify(outer: &AttrPath, inner: &AttrPath) -> AttrPath {
    if outer.sub_attr.is_some() || inner.urn.is_some() || inner.sub_attr.is_some() {
        return inner.clone();
    }
    AttrPath {
        urn: outer.urn.clone(),
        name: outer.name.clone(),
        sub_attr: Some(inner.name.clone()),
    }
}

/// A multi-valued attribute's elements, or a single value as a one-element list.
fn elements(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// Looks `key` up ignoring ASCII case, preferring an exact match.
fn get_ignore_case<'v>(object: &'v serde_json::Map<String, Value>, key: &str) -> Option<&'v Value> {
    object
        .get(key)
        .or_else(|| object.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// The values `path` names in `resource`, before multi-valued attributes are flattened: one for
/// `name`, one per element for `emails.value`, none when absent.
fn values_at<'v>(resource: &'v Value, path: &AttrPath) -> Vec<&'v Value> {
    let Some(top) = resource.as_object() else {
        return Vec::new();
    };
    let scope = path
        .urn
        .as_deref()
        .and_then(|urn| get_ignore_case(top, urn))
        .and_then(Value::as_object)
        .unwrap_or(top);
    let Some(value) = get_ignore_case(scope, &path.name) else {
        return Vec::new();
    };
    match &path.sub_attr {
        None => vec![value],
        Some(sub_attr) => elements(value)
            .into_iter()
            .filter_map(Value::as_object)
            .filter_map(|element| get_ignore_case(element, sub_attr))
            .collect(),
    }
}

/// RFC 7644 `pr`: has a non-empty value (for a complex value: any non-empty sub-attribute).
fn is_present(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().any(is_non_empty),
        other => is_non_empty(other),
    }
}

fn is_non_empty(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(fields) => fields.values().any(|v| !matches!(v, Value::Null)),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

fn compare_at(resource: &Value, path: &AttrPath, op: CompareOp, value: &CompValue, exact: bool) -> bool {
    let mut candidates: Vec<&Value> = values_at(resource, path)
        .into_iter()
        .flat_map(|found| match found {
            Value::Array(items) => items
                .iter()
                .filter_map(|item| match (item, &path.sub_attr) {
                    // `emails co "x"` means `emails.value co "x"` (RFC 7644 §3.4.2.2).
                    (Value::Object(fields), None) => get_ignore_case(fields, "value"),
                    _ => Some(item),
                })
                .collect(),
            single => vec![single],
        })
        .collect();
    // An absent attribute compares like null: `eq null` matches it, `ne "x"` does too.
    if candidates.is_empty() {
        candidates.push(&Value::Null);
    }
    candidates
        .into_iter()
        .any(|candidate| compare(candidate, op, value, exact))
}

/// Compares one JSON value with a filter literal.
fn compare(actual: &Value, op: CompareOp, expected: &CompValue, exact: bool) -> bool {
    use std::cmp::Ordering;
    let ordering = match (actual, expected) {
        (Value::String(actual), CompValue::String(expected)) => return compare_strings(actual, op, expected, exact),
        (Value::Number(actual), CompValue::Number(expected)) => match (actual.as_f64(), expected.as_f64()) {
            (Some(a), Some(b)) => a.partial_cmp(&b),
            _ => None,
        },
        (Value::Bool(actual), CompValue::Bool(expected)) => {
            return match op {
                CompareOp::Eq => actual == expected,
                CompareOp::Ne => actual != expected,
                _ => false,
            }
        }
        (Value::Null, CompValue::Null) => Some(Ordering::Equal),
        _ => None,
    };
    match (op, ordering) {
        // Different types (or an unordered number) are simply not equal.
        (CompareOp::Ne, None) => true,
        (_, None) => false,
        // Only equality makes sense for null.
        (CompareOp::Eq, Some(o)) => o == Ordering::Equal,
        (CompareOp::Ne, Some(o)) => o != Ordering::Equal,
        (_, Some(_)) if matches!(actual, Value::Null) => false,
        (CompareOp::Gt, Some(o)) => o == Ordering::Greater,
        (CompareOp::Ge, Some(o)) => o != Ordering::Less,
        (CompareOp::Lt, Some(o)) => o == Ordering::Less,
        (CompareOp::Le, Some(o)) => o != Ordering::Greater,
        // `co`, `sw` and `ew` are string operators.
        (CompareOp::Co | CompareOp::Sw | CompareOp::Ew, Some(_)) => false,
    }
}

/// String comparison: case-insensitive unless `exact`. Ordering is by code point, which also
/// orders RFC 3339 timestamps in the same format correctly.
fn compare_strings(actual: &str, op: CompareOp, expected: &str, exact: bool) -> bool {
    let (actual, expected): (Cow<'_, str>, Cow<'_, str>) = if exact {
        (actual.into(), expected.into())
    } else {
        (actual.to_lowercase().into(), expected.to_lowercase().into())
    };
    match op {
        CompareOp::Eq => actual == expected,
        CompareOp::Ne => actual != expected,
        CompareOp::Co => actual.contains(&*expected),
        CompareOp::Sw => actual.starts_with(&*expected),
        CompareOp::Ew => actual.ends_with(&*expected),
        CompareOp::Gt => actual > expected,
        CompareOp::Ge => actual >= expected,
        CompareOp::Lt => actual < expected,
        CompareOp::Le => actual <= expected,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::cell::RefCell;

    // --- helpers ------------------------------------------------------------------------------

    fn attr(name: &str) -> AttrPath {
        AttrPath {
            urn: None,
            name: name.to_string(),
            sub_attr: None,
        }
    }

    fn sub(name: &str, sub_attr: &str) -> AttrPath {
        AttrPath {
            urn: None,
            name: name.to_string(),
            sub_attr: Some(sub_attr.to_string()),
        }
    }

    fn urn(urn: &str, name: &str, sub_attr: Option<&str>) -> AttrPath {
        AttrPath {
            urn: Some(urn.to_string()),
            name: name.to_string(),
            sub_attr: sub_attr.map(str::to_string),
        }
    }

    fn cmp(path: AttrPath, op: CompareOp, value: CompValue) -> Filter {
        Filter::Compare { path, op, value }
    }

    fn string(s: &str) -> CompValue {
        CompValue::String(s.to_string())
    }

    fn int(n: i64) -> CompValue {
        CompValue::Number(n.into())
    }

    fn pr(name: &str) -> Filter {
        Filter::Present(attr(name))
    }

    fn and(left: Filter, right: Filter) -> Filter {
        Filter::And(Box::new(left), Box::new(right))
    }

    fn or(left: Filter, right: Filter) -> Filter {
        Filter::Or(Box::new(left), Box::new(right))
    }

    fn not(inner: Filter) -> Filter {
        Filter::Not(Box::new(inner))
    }

    fn value_path(path: AttrPath, filter: Filter) -> Filter {
        Filter::ValuePath {
            path,
            filter: Box::new(filter),
        }
    }

    fn parse(input: &str) -> Filter {
        parse_filter(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
    }

    fn parse_err(input: &str) -> FilterError {
        match parse_filter(input) {
            Ok(filter) => panic!("{input:?} should not parse, got {filter:?}"),
            Err(e) => e,
        }
    }

    fn path_err(input: &str) -> FilterError {
        match parse_patch_path(input) {
            Ok(path) => panic!("{input:?} should not parse, got {path:?}"),
            Err(e) => e,
        }
    }

    /// Asserts that parsing fails at `position` with a message containing `fragment`.
    fn assert_err(input: &str, position: usize, fragment: &str) {
        let e = parse_err(input);
        assert_eq!(e.position, position, "{input:?}: {e}");
        assert!(
            e.message.contains(fragment),
            "{input:?}: {e} should mention {fragment:?}"
        );
    }

    const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    // --- comparison operators -----------------------------------------------------------------

    #[test]
    fn parses_every_comparison_operator() {
        for op in CompareOp::ALL {
            let text = format!("title {op} \"x\"");
            assert_eq!(parse(&text), cmp(attr("title"), op, string("x")), "{text}");
        }
    }

    #[test]
    fn parses_present() {
        assert_eq!(parse("title pr"), pr("title"));
    }

    #[test]
    fn operators_are_case_insensitive() {
        assert_eq!(
            parse("userName Eq \"john\""),
            cmp(attr("userName"), CompareOp::Eq, string("john"))
        );
        assert_eq!(parse("a NE 1"), cmp(attr("a"), CompareOp::Ne, int(1)));
        assert_eq!(parse("a cO \"x\""), cmp(attr("a"), CompareOp::Co, string("x")));
        assert_eq!(parse("a PR"), pr("a"));
    }

    #[test]
    fn logical_keywords_are_case_insensitive() {
        assert_eq!(parse("a pr AND b pr Or c pr"), or(and(pr("a"), pr("b")), pr("c")));
        assert_eq!(parse("NOT (a pr)"), not(pr("a")));
        assert_eq!(parse("nOt (a pr)"), not(pr("a")));
    }

    #[test]
    fn unknown_operator_is_an_error() {
        assert_err(
            "userName equals \"john\"",
            9,
            "expected a comparison operator after 'userName'",
        );
        assert_err("userName = \"john\"", 9, "unexpected character '='");
    }

    #[test]
    fn attribute_without_operator_is_an_error() {
        assert_err("userName", 8, "expected a comparison operator after 'userName'");
        assert_err("(userName)", 9, "expected a comparison operator after 'userName'");
    }

    #[test]
    fn missing_value_is_an_error() {
        assert_err("userName eq", 11, "expected a value after 'eq'");
        assert_err("(userName eq)", 12, "expected a value after 'eq'");
        assert_err("userName eq and", 12, "expected a value");
    }

    #[test]
    fn present_with_a_value_is_an_error() {
        assert_err("title pr \"x\"", 9, "'pr' operator does not take a value");
        assert_err("title pr true", 9, "'pr' operator does not take a value");
        assert_err("title pr 5", 9, "'pr' operator does not take a value");
    }

    // --- RFC 7644 §3.4.2.2 examples -----------------------------------------------------------

    #[test]
    fn rfc_example_user_name_eq_with_mixed_case_operator() {
        assert_eq!(
            parse("userName Eq \"john\""),
            cmp(attr("userName"), CompareOp::Eq, string("john"))
        );
    }

    #[test]
    fn rfc_example_user_name_eq() {
        assert_eq!(
            parse("userName eq \"bjensen\""),
            cmp(attr("userName"), CompareOp::Eq, string("bjensen"))
        );
    }

    #[test]
    fn rfc_example_family_name_co_with_apostrophe() {
        assert_eq!(
            parse("name.familyName co \"O'Malley\""),
            cmp(sub("name", "familyName"), CompareOp::Co, string("O'Malley"))
        );
    }

    #[test]
    fn rfc_example_user_name_sw() {
        assert_eq!(
            parse("userName sw \"J\""),
            cmp(attr("userName"), CompareOp::Sw, string("J"))
        );
    }

    #[test]
    fn rfc_example_urn_qualified_user_name() {
        assert_eq!(
            parse("urn:ietf:params:scim:schemas:core:2.0:User:userName sw \"J\""),
            cmp(urn(CORE, "userName", None), CompareOp::Sw, string("J"))
        );
    }

    #[test]
    fn rfc_example_title_pr() {
        assert_eq!(parse("title pr"), pr("title"));
    }

    #[test]
    fn rfc_examples_last_modified_orderings() {
        for (text, op) in [
            ("gt", CompareOp::Gt),
            ("ge", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("le", CompareOp::Le),
        ] {
            assert_eq!(
                parse(&format!("meta.lastModified {text} \"2011-05-13T04:42:34Z\"")),
                cmp(sub("meta", "lastModified"), op, string("2011-05-13T04:42:34Z"))
            );
        }
    }

    #[test]
    fn rfc_example_title_pr_and_user_type() {
        assert_eq!(
            parse("title pr and userType eq \"Employee\""),
            and(pr("title"), cmp(attr("userType"), CompareOp::Eq, string("Employee")))
        );
    }

    #[test]
    fn rfc_example_title_pr_or_user_type() {
        assert_eq!(
            parse("title pr or userType eq \"Intern\""),
            or(pr("title"), cmp(attr("userType"), CompareOp::Eq, string("Intern")))
        );
    }

    #[test]
    fn rfc_example_schemas_eq_urn_value() {
        assert_eq!(
            parse("schemas eq \"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\""),
            cmp(attr("schemas"), CompareOp::Eq, string(ENTERPRISE))
        );
    }

    fn emails_or_clause() -> Filter {
        or(
            cmp(attr("emails"), CompareOp::Co, string("example.com")),
            cmp(sub("emails", "value"), CompareOp::Co, string("example.org")),
        )
    }

    #[test]
    fn rfc_example_and_with_parenthesised_or() {
        assert_eq!(
            parse("userType eq \"Employee\" and (emails co \"example.com\" or emails.value co \"example.org\")"),
            and(
                cmp(attr("userType"), CompareOp::Eq, string("Employee")),
                emails_or_clause()
            )
        );
    }

    #[test]
    fn rfc_example_and_not() {
        assert_eq!(
            parse("userType ne \"Employee\" and not (emails co \"example.com\" or emails.value co \"example.org\")"),
            and(
                cmp(attr("userType"), CompareOp::Ne, string("Employee")),
                not(emails_or_clause())
            )
        );
    }

    #[test]
    fn rfc_example_and_parenthesised_single_comparison() {
        assert_eq!(
            parse("userType eq \"Employee\" and (emails.type eq \"work\")"),
            and(
                cmp(attr("userType"), CompareOp::Eq, string("Employee")),
                cmp(sub("emails", "type"), CompareOp::Eq, string("work"))
            )
        );
    }

    fn work_email_filter() -> Filter {
        value_path(
            attr("emails"),
            and(
                cmp(attr("type"), CompareOp::Eq, string("work")),
                cmp(attr("value"), CompareOp::Co, string("@example.com")),
            ),
        )
    }

    #[test]
    fn rfc_example_and_value_path() {
        assert_eq!(
            parse("userType eq \"Employee\" and emails[type eq \"work\" and value co \"@example.com\"]"),
            and(
                cmp(attr("userType"), CompareOp::Eq, string("Employee")),
                work_email_filter()
            )
        );
    }

    #[test]
    fn rfc_example_value_paths_or() {
        assert_eq!(
            parse("emails[type eq \"work\" and value co \"@example.com\"] or ims[type eq \"xmpp\" and value co \"@foo.com\"]"),
            or(
                work_email_filter(),
                value_path(
                    attr("ims"),
                    and(
                        cmp(attr("type"), CompareOp::Eq, string("xmpp")),
                        cmp(attr("value"), CompareOp::Co, string("@foo.com")),
                    ),
                ),
            )
        );
    }

    // --- precedence and grouping --------------------------------------------------------------

    #[test]
    fn and_binds_tighter_than_or() {
        let (a, b, c) = (
            cmp(attr("a"), CompareOp::Eq, int(1)),
            cmp(attr("b"), CompareOp::Eq, int(2)),
            cmp(attr("c"), CompareOp::Eq, int(3)),
        );
        assert_eq!(
            parse("a eq 1 or b eq 2 and c eq 3"),
            or(a.clone(), and(b.clone(), c.clone()))
        );
        assert_eq!(parse("a eq 1 and b eq 2 or c eq 3"), or(and(a, b), c));
    }

    #[test]
    fn and_is_left_associative() {
        assert_eq!(parse("a pr and b pr and c pr"), and(and(pr("a"), pr("b")), pr("c")));
    }

    #[test]
    fn or_is_left_associative() {
        assert_eq!(parse("a pr or b pr or c pr"), or(or(pr("a"), pr("b")), pr("c")));
    }

    #[test]
    fn not_binds_tighter_than_and() {
        assert_eq!(parse("not (a pr) and b pr"), and(not(pr("a")), pr("b")));
    }

    #[test]
    fn parentheses_override_precedence() {
        assert_eq!(parse("(a pr or b pr) and c pr"), and(or(pr("a"), pr("b")), pr("c")));
        assert_eq!(parse("a pr and (b pr and c pr)"), and(pr("a"), and(pr("b"), pr("c"))));
    }

    #[test]
    fn redundant_parentheses_are_accepted() {
        assert_eq!(parse("((a pr))"), pr("a"));
    }

    #[test]
    fn not_needs_no_space_before_parenthesis() {
        assert_eq!(parse("not(a pr)"), not(pr("a")));
        assert_eq!(parse("not \t (a pr)"), not(pr("a")));
    }

    #[test]
    fn not_without_parentheses_is_an_error() {
        assert_err("not a pr", 4, "expected a comparison operator after 'not'");
    }

    #[test]
    fn keywords_can_be_attribute_names() {
        assert_eq!(parse("not eq 1"), cmp(attr("not"), CompareOp::Eq, int(1)));
        assert_eq!(parse("pr pr"), pr("pr"));
        assert_eq!(parse("and pr and or pr"), and(pr("and"), pr("or")));
        assert_eq!(parse("eq eq \"eq\""), cmp(attr("eq"), CompareOp::Eq, string("eq")));
        assert_eq!(parse("not[a pr]"), value_path(attr("not"), pr("a")));
    }

    #[test]
    fn unbalanced_parentheses_are_errors() {
        assert_err("(a pr", 5, "missing ')' to close the group opened at position 0");
        assert_err("a pr)", 4, "unexpected ')'");
        assert_err("()", 1, "unexpected ')'");
        assert_err("(a pr b pr)", 6, "expected 'and', 'or' or ')'");
        assert_err("not (a pr", 9, "missing ')'");
    }

    #[test]
    fn dangling_logical_operator_is_an_error() {
        assert_err("a pr and", 8, "unexpected end of the filter");
        assert_err("a pr or (", 9, "unexpected end of the filter");
    }

    // --- value paths --------------------------------------------------------------------------

    #[test]
    fn parses_simple_value_path() {
        assert_eq!(
            parse("emails[type eq \"work\"]"),
            value_path(attr("emails"), cmp(attr("type"), CompareOp::Eq, string("work")))
        );
    }

    #[test]
    fn value_filter_supports_not_and_parentheses() {
        assert_eq!(
            parse("emails[not (type eq \"work\") and (primary eq true or value pr)]"),
            value_path(
                attr("emails"),
                and(
                    not(cmp(attr("type"), CompareOp::Eq, string("work"))),
                    or(cmp(attr("primary"), CompareOp::Eq, CompValue::Bool(true)), pr("value")),
                )
            )
        );
    }

    #[test]
    fn value_path_with_urn() {
        assert_eq!(
            parse("urn:x:y:emails[type pr]"),
            value_path(urn("urn:x:y", "emails", None), pr("type"))
        );
    }

    #[test]
    fn value_path_combines_with_logical_operators() {
        assert_eq!(
            parse("not (emails[type pr]) or userName pr"),
            or(not(value_path(attr("emails"), pr("type"))), pr("userName"))
        );
    }

    #[test]
    fn nested_value_paths_are_errors() {
        assert_err("a[b[c eq 1]]", 3, "value paths cannot be nested");
        assert_err("a[x pr and (b[c pr])]", 13, "value paths cannot be nested");
    }

    #[test]
    fn empty_value_filter_is_an_error() {
        assert_err("emails[]", 7, "empty value filter");
    }

    #[test]
    fn unclosed_value_filter_is_an_error() {
        assert_err(
            "emails[type pr",
            14,
            "missing ']' to close the group opened at position 6",
        );
        assert_err("emails[type pr)", 14, "expected 'and', 'or' or ']', found ')'");
    }

    #[test]
    fn sub_attribute_after_value_path_is_an_error_in_filters() {
        assert_err("emails[type pr].value eq 1", 15, "cannot have a sub-attribute");
    }

    // --- attribute paths ----------------------------------------------------------------------

    #[test]
    fn parses_sub_attribute() {
        assert_eq!(parse("name.givenName pr"), Filter::Present(sub("name", "givenName")));
    }

    #[test]
    fn attribute_names_keep_their_case() {
        assert_eq!(parse("NAME.GivenName pr"), Filter::Present(sub("NAME", "GivenName")));
    }

    #[test]
    fn attribute_names_allow_digits_hyphens_and_underscores() {
        assert_eq!(parse("x509Certificates pr"), pr("x509Certificates"));
        assert_eq!(parse("a-b_c pr"), pr("a-b_c"));
    }

    #[test]
    fn dollar_ref_is_an_attribute_name() {
        assert_eq!(parse("$ref pr"), pr("$ref"));
        assert_eq!(parse("members.$ref pr"), Filter::Present(sub("members", "$ref")));
    }

    #[test]
    fn urn_runs_to_the_last_colon() {
        assert_eq!(
            parse("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName pr"),
            Filter::Present(urn(CORE, "name", Some("givenName")))
        );
        assert_eq!(
            parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"x\""),
            cmp(urn(ENTERPRISE, "manager", Some("value")), CompareOp::Eq, string("x"))
        );
    }

    #[test]
    fn urn_prefix_is_case_insensitive_and_kept_as_written() {
        assert_eq!(
            parse("URN:Foo:Bar:baz pr"),
            Filter::Present(urn("URN:Foo:Bar", "baz", None))
        );
    }

    #[test]
    fn attribute_named_urn_is_not_a_urn() {
        assert_eq!(parse("urn pr"), pr("urn"));
        assert_eq!(parse("urn.x pr"), Filter::Present(sub("urn", "x")));
    }

    #[test]
    fn urn_without_namespace_is_an_error() {
        assert_err("urn:foo pr", 0, "not a schema URN followed by an attribute name");
        assert_err("urn::foo pr", 0, "not a schema URN");
    }

    #[test]
    fn urn_without_attribute_name_is_an_error() {
        assert_err("urn:a:b: pr", 8, "expected an attribute name");
    }

    #[test]
    fn invalid_attribute_names_are_errors() {
        assert_err("1abc pr", 0, "must start with a letter");
        assert_err("_a pr", 0, "must start with a letter");
        assert_err("a:b pr", 1, "invalid character ':' in attribute name 'a:b'");
        assert_err("a$b pr", 1, "invalid character '$'");
        assert_err("a. pr", 2, "expected an attribute name");
        assert_err(".a pr", 0, "expected an attribute name");
    }

    #[test]
    fn more_than_one_sub_attribute_is_an_error() {
        assert_err("a.b.c pr", 3, "more than one sub-attribute");
    }

    #[test]
    fn value_where_attribute_expected_is_an_error() {
        assert_err(
            "\"john\" eq userName",
            0,
            "expected an attribute path or '(', found a string",
        );
        assert_err("[a pr]", 0, "expected an attribute path or '(', found '['");
    }

    // --- values -------------------------------------------------------------------------------

    #[test]
    fn parses_booleans_and_null_in_any_case() {
        assert_eq!(parse("a eq true"), cmp(attr("a"), CompareOp::Eq, CompValue::Bool(true)));
        assert_eq!(
            parse("a eq FALSE"),
            cmp(attr("a"), CompareOp::Eq, CompValue::Bool(false))
        );
        assert_eq!(parse("a eq True"), cmp(attr("a"), CompareOp::Eq, CompValue::Bool(true)));
        assert_eq!(parse("a eq nUlL"), cmp(attr("a"), CompareOp::Eq, CompValue::Null));
    }

    #[test]
    fn parses_integers() {
        assert_eq!(parse("a eq 0"), cmp(attr("a"), CompareOp::Eq, int(0)));
        assert_eq!(parse("a eq 42"), cmp(attr("a"), CompareOp::Eq, int(42)));
        assert_eq!(parse("a eq -7"), cmp(attr("a"), CompareOp::Eq, int(-7)));
        assert_eq!(
            parse("a eq 18446744073709551615"),
            cmp(attr("a"), CompareOp::Eq, CompValue::Number(u64::MAX.into()))
        );
        assert_eq!(
            parse("a eq -9223372036854775808"),
            cmp(attr("a"), CompareOp::Eq, CompValue::Number(i64::MIN.into()))
        );
    }

    #[test]
    fn parses_fractions_and_exponents() {
        let float = |f: f64| CompValue::Number(serde_json::Number::from_f64(f).unwrap());
        assert_eq!(parse("a gt 1.5"), cmp(attr("a"), CompareOp::Gt, float(1.5)));
        assert_eq!(parse("a gt -2.5e-3"), cmp(attr("a"), CompareOp::Gt, float(-0.0025)));
        assert_eq!(parse("a gt 1E5"), cmp(attr("a"), CompareOp::Gt, float(100_000.0)));
        assert_eq!(parse("a gt 1e+2"), cmp(attr("a"), CompareOp::Gt, float(100.0)));
    }

    #[test]
    fn number_followed_by_parenthesis() {
        assert_eq!(parse("(a eq 1)"), cmp(attr("a"), CompareOp::Eq, int(1)));
    }

    #[test]
    fn invalid_numbers_are_errors() {
        assert_err("a eq 01", 5, "invalid number '01'");
        assert_err("a eq 1.", 5, "invalid number '1.'");
        assert_err("a eq -", 5, "invalid number '-'");
        assert_err("a eq 1e400", 5, "invalid number '1e400'");
        assert_err("a eq 1x", 5, "invalid number '1x'");
        assert_err("a eq +1", 5, "expected a value");
        assert_err("a eq .5", 5, "expected a value");
    }

    #[test]
    fn bare_words_are_not_values() {
        assert_err(
            "a eq john",
            5,
            "expected a value (a string, number, true, false or null), found 'john'",
        );
    }

    #[test]
    fn single_quoted_strings_are_errors() {
        assert_err("a eq 'john'", 5, "double quotes");
    }

    #[test]
    fn parses_simple_escapes() {
        assert_eq!(
            parse(r#"a eq "q\" b\\ s\/ \b\f\n\r\t""#),
            cmp(attr("a"), CompareOp::Eq, string("q\" b\\ s/ \u{8}\u{c}\n\r\t"))
        );
    }

    #[test]
    fn parses_unicode_escapes() {
        assert_eq!(
            parse(r#"a eq "\u00e9\u00C9\u0000""#),
            cmp(attr("a"), CompareOp::Eq, string("éÉ\0"))
        );
    }

    #[test]
    fn parses_surrogate_pair_escapes() {
        assert_eq!(
            parse(r#"a eq "\ud83d\ude00""#),
            cmp(attr("a"), CompareOp::Eq, string("😀"))
        );
    }

    #[test]
    fn unpaired_surrogates_are_errors() {
        assert_err(r#"a eq "\ud83d""#, 6, "unpaired UTF-16 surrogate");
        assert_err(r#"a eq "\ud83dx""#, 6, "unpaired UTF-16 surrogate");
        assert_err(r#"a eq "\ud83d\u0041""#, 6, "unpaired UTF-16 surrogate");
        assert_err(r#"a eq "\ude00""#, 6, "unpaired UTF-16 surrogate");
    }

    #[test]
    fn invalid_escapes_are_errors() {
        assert_err(r#"a eq "\x""#, 6, "invalid escape '\\x'");
        assert_err(r#"a eq "\u12g4""#, 6, "four hex digits");
        assert_err(r#"a eq "\u12"#, 6, "four hex digits");
        assert_err(r#"a eq "\é""#, 6, "invalid escape '\\é'");
    }

    #[test]
    fn unterminated_strings_are_errors() {
        assert_err("a eq \"abc", 5, "unterminated string");
        assert_err("a eq \"abc\\", 5, "unterminated string");
        assert_err("a eq \"abc\\\"", 5, "unterminated string");
    }

    #[test]
    fn strings_keep_raw_unicode() {
        assert_eq!(
            parse("a eq \"日本語 é 😀\""),
            cmp(attr("a"), CompareOp::Eq, string("日本語 é 😀"))
        );
    }

    #[test]
    fn strings_may_contain_filter_syntax() {
        assert_eq!(
            parse("a eq \") or b pr [not (\""),
            cmp(attr("a"), CompareOp::Eq, string(") or b pr [not ("))
        );
    }

    // --- whitespace, errors, limits -----------------------------------------------------------

    #[test]
    fn whitespace_is_flexible() {
        assert_eq!(
            parse("  \t a   eq\t\t1    and(b pr )  "),
            and(cmp(attr("a"), CompareOp::Eq, int(1)), pr("b"))
        );
    }

    #[test]
    fn empty_filter_is_an_error() {
        assert_err("", 0, "empty filter");
        assert_err("   \t", 4, "empty filter");
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        assert_err("a pr b", 5, "expected 'and', 'or' or the end of the filter, found 'b'");
        assert_err("a eq 1 \"x\"", 7, "found a string");
        assert_err("a pr ]", 5, "unexpected ']'");
    }

    #[test]
    fn non_ascii_outside_strings_is_an_error() {
        assert_err("é pr", 0, "unexpected character 'é'");
        assert_err("userNamé pr", 7, "unexpected character 'é'");
        assert_err("a eq \"é\" 😀", 10, "unexpected character '😀'");
    }

    #[test]
    fn error_positions_are_byte_offsets_after_multibyte_text() {
        // "日本" is 6 bytes, so `x` starts at byte 14, not 10.
        assert_err("a eq \"日本\" x", 14, "found 'x'");
    }

    #[test]
    fn control_characters_outside_strings_are_escaped_in_messages() {
        assert_err("a pr \u{1}", 5, "unexpected character '\\u{1}'");
    }

    #[test]
    fn error_display_includes_position() {
        assert_eq!(
            parse_err("a pr)").to_string(),
            "invalid filter at position 4: unexpected ')'"
        );
    }

    #[test]
    fn filter_at_the_length_limit_parses() {
        let text = format!("a eq \"{}\"", "x".repeat(MAX_FILTER_LEN - 7));
        assert_eq!(text.len(), MAX_FILTER_LEN);
        assert!(parse_filter(&text).is_ok());
    }

    #[test]
    fn filter_over_the_length_limit_is_an_error() {
        let text = format!("a eq \"{}\"", "x".repeat(MAX_FILTER_LEN - 6));
        assert_err(&text, MAX_FILTER_LEN, "filter longer than 8192 bytes");
    }

    fn nested_parens(levels: usize) -> String {
        format!("{}a pr{}", "(".repeat(levels), ")".repeat(levels))
    }

    fn nested_nots(levels: usize) -> String {
        format!("{}a pr{}", "not (".repeat(levels), ")".repeat(levels))
    }

    fn and_chain(terms: usize) -> String {
        vec!["a pr"; terms].join(" and ")
    }

    #[test]
    fn parentheses_up_to_the_depth_limit_parse() {
        assert_eq!(parse(&nested_parens(MAX_FILTER_DEPTH)), pr("a"));
    }

    #[test]
    fn parentheses_over_the_depth_limit_are_an_error() {
        assert_err(
            &nested_parens(MAX_FILTER_DEPTH + 1),
            MAX_FILTER_DEPTH,
            "nested deeper than 32 levels",
        );
    }

    #[test]
    fn nots_over_the_depth_limit_are_an_error() {
        // Each `not (` opens a group: 32 are allowed, one more is too many.
        assert!(parse_filter(&nested_nots(MAX_FILTER_DEPTH)).is_ok());
        let e = parse_err(&nested_nots(MAX_FILTER_DEPTH + 1));
        assert!(e.message.contains("nested deeper than 32 levels"), "{e}");
    }

    #[test]
    fn logical_chains_over_the_depth_limit_are_an_error() {
        // Long flat chains (`id eq "1" or id eq "2" or …`) are fine up to the tree limit.
        assert!(parse_filter(&and_chain(MAX_TREE_DEPTH)).is_ok());
        let text = and_chain(MAX_TREE_DEPTH + 1);
        let last_and = text.rfind("and").unwrap();
        assert_err(&text, last_and, "more than 256 nested terms");
    }

    #[test]
    fn value_path_counts_towards_depth() {
        let inner = nested_parens(MAX_FILTER_DEPTH - 1);
        assert!(parse_filter(&format!("emails[{inner}]")).is_ok());
        let e = parse_err(&format!("emails[{}]", nested_parens(MAX_FILTER_DEPTH)));
        assert!(e.message.contains("nested deeper"), "{e}");
        let e = parse_err(&format!("emails[{}]", nested_nots(MAX_FILTER_DEPTH)));
        assert!(e.message.contains("nested deeper"), "{e}");
    }

    #[test]
    fn hostile_nesting_fails_without_overflowing_the_stack() {
        let repeat_to = |unit: &str, prefix: &str, len: usize| {
            format!("{prefix}{}", unit.repeat((len - prefix.len()) / unit.len()))
        };
        for (prefix, unit) in [
            ("", "("),
            ("", "not ("),
            ("", "not("),
            ("", "a pr and ("),
            ("", "a pr or not ((a pr) and "),
            ("emails[", "("),
        ] {
            // Within the length limit: refused for depth.
            let e = parse_err(&repeat_to(unit, prefix, MAX_FILTER_LEN));
            assert!(e.message.contains("nested deeper than 32 levels"), "{unit}: {e}");
            // Far over the length limit: refused before parsing.
            let e = parse_err(&repeat_to(unit, prefix, 100_000));
            assert!(e.message.contains("longer than"), "{unit}: {e}");
        }
    }

    #[test]
    fn every_prefix_of_the_rfc_examples_is_handled() {
        let examples = [
            "userType ne \"Employee\" and not (emails co \"example.com\" or emails.value co \"example.org\")",
            "emails[type eq \"work\" and value co \"@example.com\"] or ims[type eq \"xmpp\" and value co \"@foo.com\"]",
            "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName eq \"\\u00e9\\ud83d\\ude00日本\"",
            "a gt -1.5e+3",
        ];
        for example in examples {
            for (end, _) in example.char_indices() {
                let _ = parse_filter(&example[..end]);
                let _ = parse_patch_path(&example[..end]);
            }
        }
    }

    // --- printing -----------------------------------------------------------------------------

    #[test]
    fn prints_attribute_paths() {
        assert_eq!(attr("userName").to_string(), "userName");
        assert_eq!(sub("name", "givenName").to_string(), "name.givenName");
        assert_eq!(
            urn(ENTERPRISE, "manager", Some("value")).to_string(),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
        );
    }

    #[test]
    fn prints_operators_in_lowercase() {
        let printed: Vec<String> = CompareOp::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(printed, ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]);
    }

    #[test]
    fn prints_values_as_json() {
        assert_eq!(CompValue::Null.to_string(), "null");
        assert_eq!(CompValue::Bool(false).to_string(), "false");
        assert_eq!(int(-3).to_string(), "-3");
        assert_eq!(string("a\"b\\c\nd/é").to_string(), r#""a\"b\\c\nd/é""#);
    }

    #[test]
    fn prints_canonical_filters() {
        assert_eq!(parse("userName  Eq \"john\"").to_string(), "userName eq \"john\"");
        assert_eq!(parse("TITLE PR").to_string(), "TITLE pr");
        assert_eq!(parse("NOT(a pr)").to_string(), "not (a pr)");
        assert_eq!(
            parse("emails[type eq \"work\" AND value co \"@example.com\"]").to_string(),
            "emails[type eq \"work\" and value co \"@example.com\"]"
        );
    }

    #[test]
    fn prints_parentheses_around_nested_logical_operands() {
        assert_eq!(parse("a pr or b pr and c pr").to_string(), "a pr or (b pr and c pr)");
        assert_eq!(parse("a pr and b pr and c pr").to_string(), "a pr and b pr and c pr");
        assert_eq!(parse("(a pr or b pr) and c pr").to_string(), "(a pr or b pr) and c pr");
        assert_eq!(parse("not (a pr or b pr)").to_string(), "not (a pr or b pr)");
        assert_eq!(parse("((a pr))").to_string(), "a pr");
    }

    #[test]
    fn printed_rfc_examples_parse_back() {
        for text in [
            "userType ne \"Employee\" and not (emails co \"example.com\" or emails.value co \"example.org\")",
            "emails[type eq \"work\" and value co \"@example.com\"] or ims[type eq \"xmpp\" and value co \"@foo.com\"]",
            "meta.lastModified gt \"2011-05-13T04:42:34Z\"",
        ] {
            let filter = parse(text);
            assert_eq!(parse(&filter.to_string()), filter);
        }
    }

    /// Found by `fuzz/` (target `filter`): `-2.0e30` parsed one ulp off, so the printed filter
    /// (`-1.9999999999999998e+30`) parsed back to a different number.
    #[test]
    fn fuzz_regression_float_literals_are_correctly_rounded_and_round_trip() {
        let filter = parse("x eq -2.0e30 and z lt -7");
        assert_eq!(
            filter,
            and(
                cmp(
                    attr("x"),
                    CompareOp::Eq,
                    CompValue::Number(serde_json::Number::from_f64(-2.0e30).unwrap())
                ),
                cmp(attr("z"), CompareOp::Lt, int(-7))
            )
        );
        assert_eq!(parse(&filter.to_string()), filter);
        assert!(parse_err("a eq 1e400").message.contains("invalid number"));
    }

    // --- PATCH paths --------------------------------------------------------------------------

    fn patch(input: &str) -> PatchPath {
        parse_patch_path(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
    }

    #[test]
    fn patch_path_simple_attribute() {
        assert_eq!(
            patch("members"),
            PatchPath {
                attr: attr("members"),
                filter: None,
                sub_attr: None
            }
        );
    }

    #[test]
    fn patch_path_sub_attribute() {
        assert_eq!(
            patch("name.givenName"),
            PatchPath {
                attr: sub("name", "givenName"),
                filter: None,
                sub_attr: None
            }
        );
    }

    #[test]
    fn patch_path_value_filter_with_sub_attribute() {
        assert_eq!(
            patch("emails[type eq \"work\"].value"),
            PatchPath {
                attr: attr("emails"),
                filter: Some(cmp(attr("type"), CompareOp::Eq, string("work"))),
                sub_attr: Some("value".to_string()),
            }
        );
    }

    #[test]
    fn patch_path_value_filter_without_sub_attribute() {
        assert_eq!(
            patch("members[value eq \"2819c223\"]"),
            PatchPath {
                attr: attr("members"),
                filter: Some(cmp(attr("value"), CompareOp::Eq, string("2819c223"))),
                sub_attr: None,
            }
        );
        assert_eq!(patch("emails[type eq \"work\"]").sub_attr, None);
    }

    #[test]
    fn patch_path_value_filter_with_logic() {
        assert_eq!(
            patch("emails[type eq \"work\" and not (primary eq false)].display").filter,
            Some(and(
                cmp(attr("type"), CompareOp::Eq, string("work")),
                not(cmp(attr("primary"), CompareOp::Eq, CompValue::Bool(false)))
            ))
        );
    }

    #[test]
    fn patch_path_extension_sub_attribute() {
        assert_eq!(
            patch("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
            PatchPath {
                attr: urn(ENTERPRISE, "manager", Some("value")),
                filter: None,
                sub_attr: None
            }
        );
    }

    #[test]
    fn patch_path_extension_attribute() {
        assert_eq!(
            patch("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"),
            PatchPath {
                attr: urn(ENTERPRISE, "employeeNumber", None),
                filter: None,
                sub_attr: None
            }
        );
    }

    #[test]
    fn patch_path_bare_schema_urn_splits_at_the_last_colon() {
        // The type has no "whole extension" form; resolution must recognise urn + ":" + name.
        assert_eq!(
            patch(ENTERPRISE).attr,
            urn("urn:ietf:params:scim:schemas:extension:enterprise:2.0", "User", None)
        );
    }

    #[test]
    fn patch_path_urn_value_filter() {
        let path = patch("urn:x:y:emails[value pr].display");
        assert_eq!(path.attr, urn("urn:x:y", "emails", None));
        assert_eq!(path.sub_attr.as_deref(), Some("display"));
    }

    #[test]
    fn patch_path_tolerates_surrounding_whitespace() {
        assert_eq!(patch("  members  ").attr, attr("members"));
    }

    #[test]
    fn patch_path_errors() {
        let cases: [(&str, usize, &str); 12] = [
            ("", 0, "empty path"),
            ("members foo", 8, "expected the end of the path, found 'foo'"),
            ("members[value pr] foo", 18, "expected the end of the path, found 'foo'"),
            ("members[value pr]value", 17, "expected the end of the path"),
            ("members[value pr].value.x", 23, "invalid character '.'"),
            ("members[value pr].", 18, "expected an attribute name"),
            ("members[value pr]]", 17, "expected the end of the path, found ']'"),
            ("name.givenName[value pr]", 14, "cannot follow the sub-attribute"),
            ("members[value[x pr]]", 13, "value paths cannot be nested"),
            ("members[value pr", 16, "missing ']'"),
            ("members[]", 8, "empty value filter"),
            ("(members)", 0, "expected an attribute path, found '('"),
        ];
        for (input, position, fragment) in cases {
            let e = path_err(input);
            assert_eq!(e.position, position, "{input:?}: {e}");
            assert!(
                e.message.contains(fragment),
                "{input:?}: {e} should mention {fragment:?}"
            );
        }
    }

    #[test]
    fn patch_path_length_limit() {
        let e = path_err(&"a".repeat(MAX_FILTER_LEN + 1));
        assert!(e.message.contains("longer than"), "{e}");
    }

    #[test]
    fn prints_patch_paths() {
        for text in [
            "members",
            "name.givenName",
            "emails[type eq \"work\"].value",
            "members[value eq \"2819c223\"]",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        ] {
            assert_eq!(patch(text).to_string(), text);
        }
    }

    // --- evaluation ---------------------------------------------------------------------------

    /// RFC 7643 §8.2 (full user), plus the §8.3 enterprise extension.
    fn full_user() -> Value {
        json!({
            "schemas": [CORE, ENTERPRISE],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "701984",
            "userName": "bjensen@example.com",
            "name": {
                "formatted": "Ms. Barbara J Jensen, III",
                "familyName": "Jensen",
                "givenName": "Barbara",
                "middleName": "Jane",
                "honorificPrefix": "Ms.",
                "honorificSuffix": "III"
            },
            "displayName": "Babs Jensen",
            "nickName": "Babs",
            "profileUrl": "https://login.example.com/bjensen",
            "emails": [
                { "value": "bjensen@example.com", "type": "work", "primary": true },
                { "value": "babs@jensen.org", "type": "home" }
            ],
            "addresses": [
                {
                    "type": "work",
                    "streetAddress": "100 Universal City Plaza",
                    "locality": "Hollywood",
                    "region": "CA",
                    "postalCode": "91608",
                    "country": "USA",
                    "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA",
                    "primary": true
                },
                {
                    "type": "home",
                    "streetAddress": "456 Hollywood Blvd",
                    "locality": "Hollywood",
                    "region": "CA",
                    "postalCode": "91608",
                    "country": "USA",
                    "formatted": "456 Hollywood Blvd\nHollywood, CA 91608 USA"
                }
            ],
            "phoneNumbers": [
                { "value": "555-555-5555", "type": "work" },
                { "value": "555-555-4444", "type": "mobile" }
            ],
            "ims": [{ "value": "someaimhandle", "type": "aim" }],
            "photos": [
                { "value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo" },
                { "value": "https://photos.example.com/profilephoto/72930000000Ccne/T", "type": "thumbnail" }
            ],
            "userType": "Employee",
            "title": "Tour Guide",
            "preferredLanguage": "en-US",
            "locale": "en-US",
            "timezone": "America/Los_Angeles",
            "active": true,
            "password": "t1meMa$heen",
            "groups": [
                {
                    "value": "e9e30dba-f08f-4109-8486-d5c6a331660a",
                    "$ref": "https://example.com/v2/Groups/e9e30dba-f08f-4109-8486-d5c6a331660a",
                    "display": "Tour Guides"
                },
                {
                    "value": "fc348aa8-3835-40eb-a20b-c726e15c55b5",
                    "$ref": "https://example.com/v2/Groups/fc348aa8-3835-40eb-a20b-c726e15c55b5",
                    "display": "Employees"
                },
                {
                    "value": "71ddacd2-a8e7-49b8-a5db-ae50d0a5bfd7",
                    "$ref": "https://example.com/v2/Groups/71ddacd2-a8e7-49b8-a5db-ae50d0a5bfd7",
                    "display": "US Employees"
                }
            ],
            "x509Certificates": [{ "value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx" }],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "701984",
                "costCenter": "4130",
                "organization": "Universal Studios",
                "division": "Theme Park",
                "department": "Tour Operations",
                "manager": {
                    "value": "26118915-6090-4610-87e4-49d8ca9f808d",
                    "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d",
                    "displayName": "John Smith"
                }
            },
            "meta": {
                "resourceType": "User",
                "created": "2010-01-23T04:56:22Z",
                "lastModified": "2011-05-13T04:42:34Z",
                "version": "W/\"3694e05e9dff591\"",
                "location": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646"
            }
        })
    }

    fn never_exact(_: &AttrPath) -> bool {
        false
    }

    fn always_exact(_: &AttrPath) -> bool {
        true
    }

    fn user_matches(filter: &str) -> bool {
        parse(filter).matches(&full_user(), &never_exact)
    }

    fn assert_user_matches(filters: &[&str]) {
        for filter in filters {
            assert!(user_matches(filter), "{filter} should match");
        }
    }

    fn assert_user_does_not_match(filters: &[&str]) {
        for filter in filters {
            assert!(!user_matches(filter), "{filter} should not match");
        }
    }

    #[test]
    fn eval_eq_and_ne_on_strings() {
        assert_user_matches(&["userName eq \"bjensen@example.com\"", "userName ne \"john\""]);
        assert_user_does_not_match(&["userName eq \"john\"", "userName ne \"bjensen@example.com\""]);
    }

    #[test]
    fn eval_strings_ignore_case_by_default() {
        assert_user_matches(&["userName eq \"BJensen@Example.COM\"", "title co \"GUIDE\""]);
    }

    #[test]
    fn eval_strings_respect_case_exact() {
        let filter = parse("userName eq \"BJensen@Example.COM\"");
        assert!(!filter.matches(&full_user(), &always_exact));
        let filter = parse("userName eq \"bjensen@example.com\"");
        assert!(filter.matches(&full_user(), &always_exact));
    }

    #[test]
    fn eval_case_exact_receives_the_path_as_written() {
        let seen = RefCell::new(Vec::new());
        let record = |path: &AttrPath| {
            seen.borrow_mut().push(path.clone());
            false
        };
        parse("Name.FamilyName eq \"x\"").matches(&full_user(), &record);
        assert_eq!(seen.into_inner(), [sub("Name", "FamilyName")]);
    }

    #[test]
    fn eval_case_exact_inside_value_path_receives_the_qualified_path() {
        let seen = RefCell::new(Vec::new());
        let record = |path: &AttrPath| {
            seen.borrow_mut().push(path.clone());
            false
        };
        parse("emails[type eq \"x\"]").matches(&full_user(), &record);
        assert_eq!(seen.into_inner(), [sub("emails", "type"), sub("emails", "type")]);
    }

    #[test]
    fn eval_co_sw_ew() {
        assert_user_matches(&[
            "name.familyName co \"ense\"",
            "userName sw \"bjen\"",
            "userName ew \"example.com\"",
            "title co \"\"",
        ]);
        assert_user_does_not_match(&[
            "name.familyName co \"x\"",
            "userName sw \"example\"",
            "userName ew \"bjen\"",
        ]);
    }

    #[test]
    fn eval_orders_date_times_as_strings() {
        assert_user_matches(&[
            "meta.lastModified ge \"2011-05-13T04:42:34Z\"",
            "meta.lastModified le \"2011-05-13T04:42:34Z\"",
            "meta.lastModified gt \"2011-05-13T04:42:33Z\"",
            "meta.created lt \"2011-05-13T04:42:34Z\"",
        ]);
        assert_user_does_not_match(&[
            "meta.lastModified gt \"2011-05-13T04:42:34Z\"",
            "meta.lastModified lt \"2011-05-13T04:42:34Z\"",
        ]);
    }

    #[test]
    fn eval_present() {
        assert_user_matches(&[
            "title pr",
            "name.givenName pr",
            "emails pr",
            "addresses pr",
            "active pr",
        ]);
        assert_user_does_not_match(&["nope pr", "name.nope pr", "emails.nope pr"]);
    }

    #[test]
    fn eval_present_ignores_empty_values() {
        let resource =
            json!({ "a": null, "b": "", "c": [], "d": {}, "e": {"x": null}, "f": [null, ""], "g": 0, "h": false });
        for name in ["a", "b", "c", "d", "e", "f", "missing"] {
            assert!(!pr(name).matches(&resource, &never_exact), "{name} pr");
        }
        for name in ["g", "h"] {
            assert!(pr(name).matches(&resource, &never_exact), "{name} pr");
        }
    }

    #[test]
    fn eval_attribute_names_ignore_case() {
        assert_user_matches(&["USERNAME eq \"bjensen@example.com\"", "Name.FamilyName eq \"jensen\""]);
    }

    #[test]
    fn eval_multi_valued_matches_any_element() {
        assert_user_matches(&[
            "emails.value co \"jensen.org\"",
            "emails.type eq \"home\"",
            "emails.type eq \"work\"",
        ]);
        assert_user_does_not_match(&["emails.type eq \"other\""]);
    }

    #[test]
    fn eval_multi_valued_without_sub_attribute_compares_value() {
        assert_user_matches(&["emails co \"example.com\"", "emails eq \"babs@jensen.org\""]);
        assert_user_does_not_match(&["emails co \"work\"", "emails eq \"home\""]);
    }

    #[test]
    fn eval_multi_valued_strings() {
        assert_user_matches(&[
            "schemas eq \"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\"",
            "schemas eq \"URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER\"",
        ]);
        assert_user_does_not_match(&["schemas eq \"urn:other\""]);
    }

    #[test]
    fn eval_urn_qualified_core_attribute_falls_back_to_top_level() {
        assert_user_matches(&["urn:ietf:params:scim:schemas:core:2.0:User:userName sw \"B\""]);
    }

    #[test]
    fn eval_urn_qualified_extension_attribute() {
        assert_user_matches(&[
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq \"701984\"",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName eq \"john smith\"",
            "URN:IETF:params:scim:schemas:extension:enterprise:2.0:User:costCenter eq \"4130\"",
        ]);
        assert_user_does_not_match(&[
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq \"1\"",
        ]);
    }

    #[test]
    fn eval_booleans_support_only_equality() {
        assert_user_matches(&["active eq true", "active ne false", "emails.primary eq true"]);
        assert_user_does_not_match(&["active eq false", "active gt false", "active co true", "active le true"]);
    }

    #[test]
    fn eval_numbers_compare_numerically() {
        let resource = json!({ "age": 42, "scores": [1, 5, 9.5], "ratio": 0.25 });
        let check = |text: &str| parse(text).matches(&resource, &never_exact);
        for text in [
            "age eq 42",
            "age eq 42.0",
            "age gt 41.5",
            "age ge 42",
            "age lt 1e3",
            "age le 42",
            "age ne 43",
            "scores gt 9",
            "scores eq 5",
            "ratio lt 1",
            "ratio eq 2.5e-1",
        ] {
            assert!(check(text), "{text} should match");
        }
        for text in [
            "age gt 42",
            "age lt 42",
            "scores lt 1",
            "age co 4",
            "age sw 4",
            "ratio ne 0.25",
        ] {
            assert!(!check(text), "{text} should not match");
        }
    }

    #[test]
    fn eval_different_types_only_match_ne() {
        assert_user_matches(&["active ne \"true\"", "userName ne 5", "name ne \"x\""]);
        assert_user_does_not_match(&[
            "active eq \"true\"",
            "userName gt 5",
            "userName eq true",
            "name eq \"x\"",
        ]);
        let resource = json!({ "n": "5" });
        assert!(!parse("n eq 5").matches(&resource, &never_exact));
    }

    #[test]
    fn eval_null() {
        let resource = json!({ "a": null, "b": "x" });
        let check = |text: &str| parse(text).matches(&resource, &never_exact);
        assert!(check("a eq null"));
        assert!(check("missing eq null"));
        assert!(check("b ne null"));
        assert!(!check("b eq null"));
        assert!(!check("a ne null"));
        assert!(!check("missing ne null"));
        assert!(!check("a gt null"));
    }

    #[test]
    fn eval_missing_attribute_compares_like_null() {
        assert_user_does_not_match(&["nope eq \"x\"", "nope co \"\"", "nope gt \"a\""]);
        assert_user_matches(&["nope ne \"x\""]);
    }

    #[test]
    fn eval_logical_operators() {
        assert_user_matches(&[
            "title pr and userType eq \"Employee\"",
            "title pr or userType eq \"Intern\"",
            "nope pr or userType eq \"Employee\"",
            "not (userType eq \"Intern\")",
        ]);
        assert_user_does_not_match(&[
            "title pr and userType eq \"Intern\"",
            "not (title pr)",
            "nope pr or nope2 pr",
        ]);
    }

    #[test]
    fn eval_rfc_compound_examples() {
        assert_user_matches(&[
            "userType eq \"Employee\" and (emails co \"example.com\" or emails.value co \"example.org\")",
            "userType eq \"Employee\" and (emails.type eq \"work\")",
            "userType eq \"Employee\" and emails[type eq \"work\" and value co \"@example.com\"]",
            "emails[type eq \"work\" and value co \"@example.com\"] or ims[type eq \"xmpp\" and value co \"@foo.com\"]",
        ]);
        assert_user_does_not_match(&[
            "userType ne \"Employee\" and not (emails co \"example.com\" or emails.value co \"example.org\")",
        ]);
    }

    #[test]
    fn eval_value_path_needs_one_element_matching_every_condition() {
        assert_user_matches(&[
            "emails[type eq \"work\" and primary eq true]",
            "groups[display eq \"Employees\"]",
        ]);
        // Both conditions hold, but on different elements.
        assert_user_does_not_match(&["emails[type eq \"home\" and value co \"example.com\"]"]);
        assert_user_does_not_match(&["ims[type eq \"xmpp\"]", "nope[type pr]", "userName[type pr]"]);
    }

    #[test]
    fn eval_value_path_on_single_complex_attribute() {
        assert_user_matches(&["name[givenName eq \"Barbara\" and familyName pr]"]);
        assert_user_does_not_match(&["name[givenName eq \"Bob\"]"]);
    }

    #[test]
    fn eval_value_path_on_extension_attribute() {
        assert_user_matches(&[
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[displayName sw \"John\"]",
        ]);
    }

    #[test]
    fn eval_dollar_ref() {
        assert_user_matches(&[
            "groups.$ref co \"fc348aa8\"",
            "groups[$ref ew \"71ddacd2-a8e7-49b8-a5db-ae50d0a5bfd7\"]",
        ]);
    }

    #[test]
    fn eval_non_object_resource_matches_nothing_but_negations() {
        for resource in [json!(null), json!("x"), json!([1, 2])] {
            assert!(!pr("a").matches(&resource, &never_exact));
            assert!(!parse("a eq 1").matches(&resource, &never_exact));
            assert!(parse("a eq null").matches(&resource, &never_exact));
        }
    }

    // --- properties ---------------------------------------------------------------------------

    fn arb_name() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "userName",
            "name",
            "givenName",
            "emails",
            "value",
            "type",
            "$ref",
            "x509-cert_2",
            "A",
            // Keyword look-alikes must survive printing too.
            "not",
            "and",
            "or",
            "pr",
            "eq",
            "true",
            "null",
            "urn",
        ])
        .prop_map(str::to_string)
    }

    fn arb_attr_path() -> impl Strategy<Value = AttrPath> {
        let urns = prop::option::of(prop::sample::select(vec![CORE, ENTERPRISE, "URN:x:Y", "urn:a:b:c.d"]));
        (urns, arb_name(), prop::option::of(arb_name())).prop_map(|(urn, name, sub_attr)| AttrPath {
            urn: urn.map(str::to_string),
            name,
            sub_attr,
        })
    }

    fn arb_value() -> impl Strategy<Value = CompValue> {
        let floats = prop::sample::select(vec![0.5, -1.25, 1e20, 3.0, -0.0, 6.02e23, 1e-7]);
        prop_oneof![
            Just(CompValue::Null),
            any::<bool>().prop_map(CompValue::Bool),
            any::<i64>().prop_map(|n| CompValue::Number(n.into())),
            any::<u64>().prop_map(|n| CompValue::Number(n.into())),
            floats.prop_map(|f| CompValue::Number(serde_json::Number::from_f64(f).unwrap())),
            any::<String>().prop_map(CompValue::String),
            "[\"\\\\/ a\u{0}-\u{1f}é😀]*".prop_map(CompValue::String),
        ]
    }

    fn arb_leaf() -> impl Strategy<Value = Filter> {
        prop_oneof![
            (
                arb_attr_path(),
                prop::sample::select(CompareOp::ALL.to_vec()),
                arb_value()
            )
                .prop_map(|(path, op, value)| Filter::Compare { path, op, value }),
            arb_attr_path().prop_map(Filter::Present),
        ]
    }

    /// Filters allowed inside `[...]`: anything but another value path.
    fn arb_value_filter() -> impl Strategy<Value = Filter> {
        arb_leaf().prop_recursive(3, 16, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(l, r)| and(l, r)),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| or(l, r)),
                inner.prop_map(not),
            ]
        })
    }

    fn arb_filter() -> impl Strategy<Value = Filter> {
        let leaf = prop_oneof![
            3 => arb_leaf(),
            1 => (arb_attr_path(), arb_value_filter()).prop_map(|(path, f)| value_path(path, f)),
        ];
        leaf.prop_recursive(5, 32, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(l, r)| and(l, r)),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| or(l, r)),
                inner.prop_map(not),
            ]
        })
    }

    fn arb_patch_path() -> impl Strategy<Value = PatchPath> {
        let plain = arb_attr_path().prop_map(|attr| PatchPath {
            attr,
            filter: None,
            sub_attr: None,
        });
        let filtered = (
            arb_attr_path().prop_map(|attr| AttrPath { sub_attr: None, ..attr }),
            arb_value_filter(),
            prop::option::of(arb_name()),
        )
            .prop_map(|(attr, filter, sub_attr)| PatchPath {
                attr,
                filter: Some(filter),
                sub_attr,
            });
        prop_oneof![plain, filtered]
    }

    /// Text made of filter syntax, so random inputs get past the tokenizer more often.
    fn filterish() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                "(", ")", "[", "]", " ", "\"", "\\", "\\u", "d83d", "a", "b.c", "urn:x:y:", "not", "and", "or", "pr",
                "eq", "gt", "1", "-2.5e3", "true", "null", "é", "😀", ".", ":", "$ref",
            ]),
            0..40,
        )
        .prop_map(|parts| parts.concat())
    }

    #[test]
    fn fuzz_regression_long_chains_print_flat_and_parse_back() {
        for op in ["and", "or"] {
            let text = (0..200)
                .map(|i| format!("a{i} pr"))
                .collect::<Vec<_>>()
                .join(&format!(" {op} "));
            let filter = parse_filter(&text).unwrap();
            assert_eq!(filter.to_string(), text);
            assert_eq!(parse_filter(&filter.to_string()), Ok(filter));
        }
        let mixed = "a pr or b pr and c pr or d pr and e pr and f pr or g pr";
        let filter = parse_filter(mixed).unwrap();
        assert_eq!(
            filter.to_string(),
            "a pr or (b pr and c pr) or (d pr and e pr and f pr) or g pr"
        );
        assert_eq!(parse_filter(&filter.to_string()), Ok(filter));
        // A right-nested operand of the same operator keeps its parentheses.
        let right = parse_filter("a pr and (b pr and c pr)").unwrap();
        assert_eq!(right.to_string(), "a pr and (b pr and c pr)");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn printed_filters_parse_back_to_the_same_tree(filter in arb_filter()) {
            let text = filter.to_string();
            prop_assert_eq!(parse_filter(&text), Ok(filter), "{}", text);
        }

        #[test]
        fn printed_patch_paths_parse_back_to_the_same_path(path in arb_patch_path()) {
            let text = path.to_string();
            prop_assert_eq!(parse_patch_path(&text), Ok(path), "{}", text);
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
            let _ = parse_filter(&text);
            let _ = parse_patch_path(&text);
        }

        #[test]
        fn parsing_filter_like_text_never_panics(text in filterish()) {
            if let Ok(filter) = parse_filter(&text) {
                // Whatever parses must also survive printing and evaluation.
                prop_assert_eq!(parse_filter(&filter.to_string()), Ok(filter.clone()));
                let _ = filter.matches(&full_user(), &never_exact);
            }
            let _ = parse_patch_path(&text);
        }

        #[test]
        fn error_positions_are_within_the_input(text in filterish()) {
            if let Err(e) = parse_filter(&text) {
                prop_assert!(e.position <= text.len());
                prop_assert!(text.is_char_boundary(e.position));
            }
        }

        #[test]
        fn evaluating_random_filters_never_panics(filter in arb_filter()) {
            let _ = filter.matches(&full_user(), &never_exact);
            let _ = filter.matches(&json!({"emails": [1, null, {"value": []}], "name": []}), &always_exact);
        }

        #[test]
        fn not_inverts_evaluation(filter in arb_filter()) {
            let user = full_user();
            prop_assert_eq!(not(filter.clone()).matches(&user, &never_exact), !filter.matches(&user, &never_exact));
        }
    }
}
