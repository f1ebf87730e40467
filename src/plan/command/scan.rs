//! The quote-aware scan of a script: statement and word boundaries, and
//! the refusal of every shell construct. It never unquotes; shlex does that
//! afterwards.

use crate::error::{Error, Result};
use std::borrow::Cow;
use std::fmt;

/// A statement that writes a file (only scanned when files are allowed).
#[derive(Debug, Default)]
pub(super) struct FileWrite {
    /// The file name after `>`.
    pub(super) target: String,
    /// The heredoc's delimiter and whether it was quoted.
    pub(super) heredoc: Option<(String, bool)>,
    /// The heredoc's body, once read.
    pub(super) body: Option<String>,
}

/// One word as written (quotes kept, line continuations removed), for shlex to unquote.
///
/// The text borrows from the script unless a line continuation inside the
/// word forced a copy, so scanning allocates nothing per character.
#[derive(Debug)]
pub(super) struct RawWord<'a> {
    pub(super) text: Cow<'a, str>,
    /// Byte offset in the script just after the word's last character.
    pub(super) end: usize,
    /// Whether any part of the word was quoted or escaped.
    pub(super) quoted: bool,
}

impl RawWord<'_> {
    pub(super) fn is_bare(&self, word: &str) -> bool {
        !self.quoted && self.text == word
    }
}

/// How the last statement ended, which decides whether an empty statement is an error.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Separator {
    Semicolon,
    AndAnd,
    Newline,
    End,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Quote {
    None,
    Single,
    Double,
}

/// Reads a script character by character, knowing its byte position.
pub(super) struct Cursor<'a> {
    script: &'a str,
    /// Byte offset just after the last character read.
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.script
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn next_if(&mut self, accept: impl Fn(&char) -> bool) -> Option<char> {
        let c = self.peek().filter(|c| accept(c))?;
        self.pos += c.len_utf8();
        Some(c)
    }
}

/// The quote-aware scan: finds statement boundaries and word boundaries and
/// rejects shell syntax. It never unquotes; shlex does that afterwards.
/// Bytes that are ordinary word characters outside quotes, in a table: the
/// scanner's fast path tests every byte of a script against it.
pub(super) const PLAIN_UNQUOTED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'_' | b'.' | b'/' | b':' | b'=' | b',' | b'@' | b'+' | b'%'
            );
        b += 1;
    }
    table
};

pub(super) struct Scanner<'a> {
    pub(super) chars: Cursor<'a>,
    pub(super) statements: Vec<Vec<RawWord<'a>>>,
    pub(super) words: Vec<RawWord<'a>>,
    pub(super) word: Option<RawWord<'a>>,
    /// The previous separator was `&&`, so the next statement must not be empty.
    pub(super) after_and_and: bool,
    /// Whether `echo ... > NAME` and `cat <<EOF > NAME` statements are understood.
    pub(super) files: bool,
    /// The current statement's file write, while it is being read.
    pub(super) pending: Option<FileWrite>,
    /// File writes, by statement index.
    pub(super) writes: Vec<(usize, FileWrite)>,
}

impl<'a> Scanner<'a> {
    pub(super) fn new(script: &'a str) -> Self {
        Scanner {
            chars: Cursor { script, pos: 0 },
            statements: Vec::with_capacity(4),
            words: Vec::with_capacity(16),
            word: None,
            after_and_and: false,
            files: false,
            pending: None,
            writes: Vec::new(),
        }
    }

    /// The statement being read, 1-based, for error messages.
    fn number(&self) -> usize {
        self.statements.len() + 1
    }

    fn reject(&self, what: impl fmt::Display) -> Error {
        Error::unsafe_command(format!("{what} in statement {}", self.number()))
    }

    /// Appends the text the cursor just read — the last `len` bytes before
    /// it — to the current word, starting one if needed.
    fn push_read(&mut self, len: usize, quoted: bool) {
        let end = self.chars.pos;
        let start = end.saturating_sub(len);
        let script = self.chars.script;
        let piece = script.get(start..end).unwrap_or_default();
        match &mut self.word {
            None => {
                self.word = Some(RawWord {
                    text: Cow::Borrowed(piece),
                    end,
                    quoted,
                });
            }
            Some(word) => {
                match &mut word.text {
                    // Contiguous with what came before: widen the borrowed slice.
                    Cow::Borrowed(text) if word.end == start => {
                        let begin = start - text.len();
                        *text = script.get(begin..end).unwrap_or_default();
                    }
                    // A line continuation was removed in between: copy.
                    text => text.to_mut().push_str(piece),
                }
                word.end = end;
                word.quoted |= quoted;
            }
        }
    }

    /// Consumes a run of ASCII characters that need no decision in the current
    /// quoting state — nothing a shell would treat specially, nothing this
    /// scanner rejects — and appends it in one step. Everything else (and
    /// every non-ASCII character) takes the character-by-character path.
    fn plain_run(&mut self, quote: Quote) -> bool {
        let rest = self
            .chars
            .script
            .as_bytes()
            .get(self.chars.pos..)
            .unwrap_or_default();
        fn quoted_text(b: u8) -> bool {
            b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\n' | b'\r')
        }
        let n = match quote {
            Quote::None => rest
                .iter()
                .take_while(|&&b| PLAIN_UNQUOTED[usize::from(b)])
                .count(),
            Quote::Single => rest
                .iter()
                .take_while(|&&b| b != b'\'' && quoted_text(b))
                .count(),
            Quote::Double => rest
                .iter()
                .take_while(|&&b| !matches!(b, b'"' | b'$' | b'`' | b'\\') && quoted_text(b))
                .count(),
        };
        if n == 0 {
            return false;
        }
        self.chars.pos += n;
        self.push_read(n, quote != Quote::None);
        true
    }

    /// Appends the character just read.
    fn push(&mut self, c: char, quoted: bool) {
        self.push_read(c.len_utf8(), quoted);
    }

    /// Appends a backslash and the character just read after it (both kept
    /// for shlex to unquote).
    fn push_escaped(&mut self, escaped: char) {
        self.push_read(1 + escaped.len_utf8(), true);
    }

    fn end_word(&mut self) {
        if let Some(word) = self.word.take() {
            self.words.push(word);
        }
    }

    fn end_statement(&mut self, separator: Separator) -> Result<()> {
        self.end_word();
        if let Some(write) = self.pending.take() {
            self.finish_write(write, separator)?;
        }
        if self.words.is_empty() {
            return match separator {
                Separator::AndAnd => Err(self.reject("`&&` without a command before it")),
                Separator::Semicolon if self.after_and_and => {
                    Err(self.reject("`;` right after `&&`"))
                }
                Separator::End if self.after_and_and => Err(self.reject("script ends with `&&`")),
                // A newline after `&&` continues the statement list, as in a shell.
                _ => Ok(()),
            };
        }
        // The next statement's words get a buffer of their own, unless
        // there is no next statement.
        let capacity = if separator == Separator::End {
            0
        } else {
            self.words.len().max(16)
        };
        self.statements.push(std::mem::replace(
            &mut self.words,
            Vec::with_capacity(capacity),
        ));
        self.after_and_and = separator == Separator::AndAnd;
        Ok(())
    }

    /// Checks the shape of a statement that writes a file and records it.
    fn finish_write(&mut self, write: FileWrite, separator: Separator) -> Result<()> {
        let first = self.words.first();
        let shape_ok = match &write.heredoc {
            None => first.is_some_and(|w| w.is_bare("echo")),
            Some(_) => self.words.len() == 1 && first.is_some_and(|w| w.is_bare("cat")),
        };
        if write.target.is_empty() || !shape_ok {
            let what = if write.target.is_empty() {
                "heredoc `<<`"
            } else {
                "redirection `>`"
            };
            return Err(self.reject(format!(
                "{what} outside quotes (a script may only write a file with \
                 `echo TEXT > NAME` or `cat > NAME <<'EOF'`)"
            )));
        }
        if write.heredoc.is_some() && write.body.is_none() {
            return Err(self.reject(match separator {
                Separator::End => "heredoc without a body",
                _ => "heredoc not at the end of its line",
            }));
        }
        self.writes.push((self.statements.len(), write));
        Ok(())
    }

    /// `> NAME` or `<<DELIM` in a statement that may write a file.
    fn file_redirect(&mut self, c: char) -> Result<()> {
        let next = self.chars.peek();
        let fd_prefix = self
            .word
            .as_ref()
            .is_some_and(|w| !w.quoted && w.text.bytes().all(|b| b.is_ascii_digit()));
        let heredoc = match (c, next) {
            ('>', n) if !fd_prefix && !matches!(n, Some('>' | '&' | '(' | '|')) => false,
            ('<', Some('<')) if !fd_prefix => {
                self.chars.next();
                match self.chars.peek() {
                    Some('<') => return Err(self.reject("here-string `<<<` outside quotes")),
                    Some('-') => return Err(self.reject("heredoc `<<-` (use `<<` without tabs)")),
                    _ => true,
                }
            }
            _ => return Err(self.redirection(c, next)),
        };
        self.end_word();
        while self.chars.next_if(|&c| c == ' ' || c == '\t').is_some() {}
        let start = self.chars.pos;
        let quote = self.chars.next_if(|&c| heredoc && (c == '\'' || c == '"'));
        while self
            .chars
            .next_if(|&c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .is_some()
        {}
        let name_start = start + usize::from(quote.is_some());
        let name = self
            .chars
            .script
            .get(name_start..self.chars.pos)
            .unwrap_or_default()
            .to_owned();
        if let Some(q) = quote {
            if self.chars.next_if(|&c| c == q).is_none() {
                return Err(self.reject("unterminated heredoc delimiter"));
            }
        }
        let ends_word = matches!(
            self.chars.peek(),
            None | Some(' ' | '\t' | '\n' | ';' | '&' | '<' | '>')
        );
        if name.is_empty() || !ends_word {
            return Err(self.reject(if heredoc {
                "heredoc `<<` delimiter that is not a plain word"
            } else {
                "redirection `>` to a name that is not a plain file name (letters, digits, \
                 `.`, `_`, `-`)"
            }));
        }
        let write = self.pending.get_or_insert_with(FileWrite::default);
        if heredoc {
            if write.heredoc.is_some() {
                return Err(self.reject("two heredocs in one statement"));
            }
            write.heredoc = Some((name, quote.is_some()));
        } else {
            if !write.target.is_empty() {
                return Err(self.reject("two redirections in one statement"));
            }
            write.target = name;
        }
        Ok(())
    }

    /// Reads a heredoc's body: the lines after the current one, up to a line
    /// holding only the delimiter.
    fn read_heredoc_body(&mut self) -> Result<()> {
        let Some((delimiter, quoted)) = self.pending.as_ref().and_then(|w| w.heredoc.clone())
        else {
            return Ok(());
        };
        let mut body = String::new();
        loop {
            let rest = self.chars.script.get(self.chars.pos..).unwrap_or_default();
            if rest.is_empty() {
                return Err(self.reject(format!(
                    "heredoc not terminated by a `{}` line",
                    delimiter.escape_debug()
                )));
            }
            let (line, consumed) = match rest.find('\n') {
                Some(i) => (rest.get(..i).unwrap_or_default(), i + 1),
                None => (rest, rest.len()),
            };
            self.chars.pos += consumed;
            if line == delimiter {
                break;
            }
            for c in line.chars() {
                self.check_quoted_char(c)?;
                if !quoted && matches!(c, '$' | '`' | '\\') {
                    return Err(self.reject(format!(
                        "`{c}` in a heredoc with an unquoted delimiter (a shell would expand \
                         it; quote the delimiter: <<'{delimiter}')"
                    )));
                }
            }
            body.push_str(line);
            body.push('\n');
        }
        if let Some(write) = &mut self.pending {
            write.body = Some(body);
        }
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    pub(super) fn scan(mut self) -> Result<(Vec<Vec<RawWord<'a>>>, Vec<(usize, FileWrite)>)> {
        let mut quote = Quote::None;
        loop {
            if self.plain_run(quote) {
                continue;
            }
            let Some(c) = self.chars.next() else { break };
            if c == '\0' {
                return Err(self.reject("NUL byte"));
            }
            quote = match quote {
                Quote::None => self.unquoted(c)?,
                Quote::Single => self.single_quoted(c)?,
                Quote::Double => self.double_quoted(c)?,
            };
        }
        match quote {
            Quote::None => {}
            Quote::Single => return Err(self.reject("unterminated single quote")),
            Quote::Double => return Err(self.reject("unterminated double quote")),
        }
        self.end_statement(Separator::End)?;
        Ok((self.statements, self.writes))
    }

    fn unquoted(&mut self, c: char) -> Result<Quote> {
        let next = self.chars.peek();
        match c {
            ' ' | '\t' => self.end_word(),
            '\n' => {
                if self.pending.is_some() {
                    self.end_word();
                    self.read_heredoc_body()?;
                }
                self.end_statement(Separator::Newline)?;
            }
            ';' => self.end_statement(Separator::Semicolon)?,
            '\'' => {
                self.push(c, true);
                return Ok(Quote::Single);
            }
            '"' => {
                self.push(c, true);
                return Ok(Quote::Double);
            }
            '\\' => match self.chars.next() {
                None => return Err(self.reject("trailing backslash")),
                // Line continuation: removed, as a shell does before splitting words.
                Some('\n') => {}
                Some(escaped) => {
                    self.check_unquoted_char(escaped)?;
                    self.push_escaped(escaped);
                }
            },
            '#' if self.word.is_none() => {
                if !self.words.is_empty() {
                    return Err(self.reject("comment `#` after a command"));
                }
                // A comment line: skip to the newline, which still ends the statement.
                while self.chars.next_if(|&n| n != '\n').is_some() {}
            }
            '&' => {
                return match next {
                    Some('&') => {
                        self.chars.next();
                        self.end_statement(Separator::AndAnd)?;
                        Ok(Quote::None)
                    }
                    Some('>') => Err(self.reject("redirection `&>` outside quotes")),
                    _ => Err(self.reject("background `&` outside quotes")),
                };
            }
            '|' => {
                return Err(match next {
                    Some('|') => self.reject("`||` outside quotes"),
                    Some('&') => self.reject("pipe `|&` outside quotes"),
                    _ => self.reject("pipe `|` outside quotes"),
                });
            }
            '>' | '<' if self.files => self.file_redirect(c)?,
            '>' | '<' => return Err(self.redirection(c, next)),
            '$' => {
                return Err(match next {
                    Some('(') => self.reject("command substitution `$(` outside quotes"),
                    Some('{') => self.reject("parameter expansion `${` outside quotes"),
                    Some('\'') => self.reject("ANSI-C quoting `$'` outside quotes"),
                    _ => self.reject("variable expansion `$` outside quotes"),
                });
            }
            '`' => return Err(self.reject("command substitution with backticks")),
            '(' | ')' => return Err(self.reject(format!("subshell or grouping `{c}`"))),
            '{' | '}' => {
                return Err(self.reject(format!("brace group or brace expansion `{c}`")));
            }
            _ => {
                self.check_unquoted_char(c)?;
                self.push(c, false);
            }
        }
        Ok(Quote::None)
    }

    fn redirection(&self, c: char, next: Option<char>) -> Error {
        let fd = self
            .word
            .as_ref()
            .filter(|w| !w.quoted && w.text.chars().all(|d| d.is_ascii_digit()))
            .map(|w| &*w.text)
            .unwrap_or_default();
        let what = match (c, next) {
            ('<', Some('<')) => "heredoc `<<`".to_owned(),
            ('<', Some('(')) => "process substitution `<(`".to_owned(),
            ('>', Some('(')) => "process substitution `>(`".to_owned(),
            ('>', Some('>')) => format!("redirection `{fd}>>`"),
            ('>', Some('&')) => format!("redirection `{fd}>&`"),
            _ => format!("redirection `{fd}{c}`"),
        };
        self.reject(format!("{what} outside quotes"))
    }

    fn check_unquoted_char(&self, c: char) -> Result<()> {
        if c == '\r' {
            return Err(self.reject("carriage return `\\r` outside quotes"));
        }
        if c.is_control() {
            return Err(self.reject(format!(
                "control character U+{:04X} outside quotes",
                u32::from(c)
            )));
        }
        if !c.is_ascii() {
            return Err(self.reject(format!(
                "non-ASCII character U+{:04X} outside quotes",
                u32::from(c)
            )));
        }
        Ok(())
    }

    fn check_quoted_char(&self, c: char) -> Result<()> {
        if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
            return Err(self.reject(format!(
                "control character U+{:04X} inside quotes",
                u32::from(c)
            )));
        }
        // Bidirectional overrides and isolates make displayed text differ from
        // what runs ("Trojan Source"); no CLI argument needs them.
        if matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') {
            return Err(self.reject(format!(
                "bidirectional control character U+{:04X}",
                u32::from(c)
            )));
        }
        Ok(())
    }

    fn single_quoted(&mut self, c: char) -> Result<Quote> {
        self.check_quoted_char(c)?;
        self.push(c, true);
        Ok(if c == '\'' {
            Quote::None
        } else {
            Quote::Single
        })
    }

    fn double_quoted(&mut self, c: char) -> Result<Quote> {
        match c {
            '"' => {
                self.push(c, true);
                return Ok(Quote::None);
            }
            '$' => return Err(self.reject("`$` inside double quotes (expanded by a shell)")),
            '`' => return Err(self.reject("backtick inside double quotes (expanded by a shell)")),
            '\\' => match self.chars.peek() {
                None => return Err(self.reject("unterminated double quote")),
                Some('\n') => {
                    self.chars.next();
                }
                Some(escaped @ ('$' | '`' | '"' | '\\')) => {
                    self.chars.next();
                    self.push_escaped(escaped);
                }
                // Any other backslash is literal; the next character is read normally.
                Some(_) => self.push('\\', true),
            },
            _ => {
                self.check_quoted_char(c)?;
                self.push(c, true);
            }
        }
        Ok(Quote::Double)
    }
}
