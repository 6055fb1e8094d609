//! Shell words: the input split into statements of words (with positions) and whole-line
//! comments, as a shell would split it.

use crate::diag::{Diagnostic, Pos};

/// One shell word with the position of its first character.
#[derive(Debug, Clone)]
pub(super) struct Tok {
    pub(super) text: String,
    pub(super) pos: Pos,
    /// Written without quotes or escapes, so character offsets are column offsets.
    pub(super) plain: bool,
    /// Contains an unquoted or double-quoted `$` (a shell expansion we do not perform).
    pub(super) expands: bool,
}

impl Tok {
    pub(super) fn is(&self, names: &[&str]) -> bool {
        names.contains(&self.text.as_str())
    }

    /// Position of the character at char offset `off` of the text, where known.
    pub(super) fn at(&self, off: usize) -> Pos {
        if self.plain {
            Pos {
                line: self.pos.line,
                col: self.pos.col + off,
            }
        } else {
            self.pos
        }
    }
}

pub(super) enum Stmt {
    Words(Vec<Tok>),
    /// A `#` comment on a line of its own, and where it starts.
    Comment(String, Pos),
}

struct Lexer {
    chars: Vec<char>,
    i: usize,
    line: usize,
    col: usize,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }
}

fn word_at(cur: &mut Option<Tok>, pos: Pos) -> &mut Tok {
    cur.get_or_insert_with(|| Tok {
        text: String::new(),
        pos,
        plain: true,
        expands: false,
    })
}

/// Split a text into statements of shell words (and whole-line comments).
pub(super) fn tokenize(text: &str, file: &str, errs: &mut Vec<Diagnostic>) -> Vec<Stmt> {
    let mut lx = Lexer {
        chars: text.chars().collect(),
        i: 0,
        line: 1,
        col: 1,
    };
    let mut out = Vec::new();
    let mut words: Vec<Tok> = Vec::new();
    let mut cur: Option<Tok> = None;
    let end_stmt = |words: &mut Vec<Tok>, cur: &mut Option<Tok>, out: &mut Vec<Stmt>| {
        if let Some(w) = cur.take() {
            words.push(w);
        }
        if !words.is_empty() {
            out.push(Stmt::Words(std::mem::take(words)));
        }
    };
    while let Some(c) = lx.peek() {
        let pos = lx.pos();
        match c {
            '\n' | ';' => {
                lx.bump();
                end_stmt(&mut words, &mut cur, &mut out);
            }
            ' ' | '\t' | '\r' => {
                lx.bump();
                if let Some(w) = cur.take() {
                    words.push(w);
                }
            }
            '#' if cur.is_none() => {
                let at = lx.pos();
                let mut comment = String::new();
                while let Some(ch) = lx.peek() {
                    if ch == '\n' {
                        break;
                    }
                    comment.push(ch);
                    lx.bump();
                }
                if words.is_empty() {
                    out.push(Stmt::Comment(comment, at));
                }
            }
            '\\' => {
                lx.bump();
                match lx.bump() {
                    Some('\n') => {} // line continuation
                    Some(ch) => {
                        let w = word_at(&mut cur, pos);
                        w.text.push(ch);
                        w.plain = false;
                    }
                    None => word_at(&mut cur, pos).text.push('\\'),
                }
            }
            '\'' => {
                lx.bump();
                let w = word_at(&mut cur, pos);
                w.plain = false;
                loop {
                    match lx.bump() {
                        Some('\'') => break,
                        Some(ch) => w.text.push(ch),
                        None => {
                            errs.push(
                                Diagnostic::error(file, pos, "unterminated single quote")
                                    .with_hint("close the quoted text with `'`"),
                            );
                            break;
                        }
                    }
                }
            }
            '"' => {
                lx.bump();
                let w = word_at(&mut cur, pos);
                w.plain = false;
                loop {
                    match lx.bump() {
                        Some('"') => break,
                        Some('\\') => match lx.peek() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => {
                                lx.bump();
                                w.text.push(e);
                            }
                            Some('\n') => {
                                lx.bump();
                            }
                            _ => w.text.push('\\'),
                        },
                        Some('$') => {
                            w.expands = true;
                            w.text.push('$');
                        }
                        Some(ch) => w.text.push(ch),
                        None => {
                            errs.push(
                                Diagnostic::error(file, pos, "unterminated double quote")
                                    .with_hint("close the quoted text with `\"`"),
                            );
                            break;
                        }
                    }
                }
            }
            '$' => {
                lx.bump();
                let w = word_at(&mut cur, pos);
                w.expands = true;
                w.text.push('$');
            }
            _ => {
                lx.bump();
                word_at(&mut cur, pos).text.push(c);
            }
        }
    }
    end_stmt(&mut words, &mut cur, &mut out);
    out
}
