//! Table arguments of transforms, in the SQL standard's form for
//! polymorphic table functions (which Spark's also follows):
//!
//! ```sql
//! SELECT * FROM sessionize(TABLE clicks PARTITION BY user_id ORDER BY ts, 1800);
//! SELECT * FROM dedup(TABLE (SELECT * FROM events WHERE day = 3) PARTITION BY (user_id, kind));
//! ```
//!
//! A table argument is `TABLE name`, `TABLE (query)` or Spark's `TABLE(name)`,
//! then optionally `PARTITION BY key` and `ORDER BY key [ASC|DESC] [NULLS
//! FIRST|LAST]`, several keys in parentheses (`PARTITION BY (a, b)`): the
//! commas between a function's arguments would make a bare list ambiguous.
//!
//! sqlparser has no syntax for them, so before parsing each becomes a call
//! of [`TABLE_ARGUMENT`] that it parses as an expression:
//! `"quiver.table"((SELECT * FROM clicks), user_id ORDER BY ts)`, which
//! [`quiver_udf_registry::WasmRelationPlanner`] plans.

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Whitespace};
use quiver_udf_registry::TABLE_ARGUMENT;

/// `sql` with its table arguments rewritten; `None` when it has none.
pub(crate) fn rewritten(sql: &str) -> Option<String> {
    if !sql.to_ascii_uppercase().contains("TABLE") {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    let mut changed = false;
    // For each open parenthesis: whether it opens a call's arguments.
    let mut calls: Vec<bool> = Vec::new();
    let mut previous: Option<Token> = None;
    let mut at = 0;
    while at < tokens.len() {
        let token = &tokens[at];
        if keyword(token) == Some(Keyword::TABLE)
            && calls.last() == Some(&true)
            && matches!(previous, Some(Token::LParen | Token::Comma))
            && let Some((replacement, next)) = table_argument(&tokens, at + 1)
        {
            out.extend(replacement);
            changed = true;
            previous = Some(Token::RParen);
            at = next;
            continue;
        }
        match token {
            Token::LParen => calls.push(previous.as_ref().is_some_and(names_a_call)),
            Token::RParen => {
                calls.pop();
            }
            _ => {}
        }
        if !matches!(token, Token::Whitespace(_)) {
            previous = Some(token.clone());
        }
        out.push(token.clone());
        at += 1;
    }
    changed.then(|| out.iter().map(ToString::to_string).collect())
}

fn keyword(token: &Token) -> Option<Keyword> {
    match token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
        _ => None,
    }
}

/// Whether a parenthesis after `token` opens the arguments of a call (not
/// a subquery after `FROM`, `IN`, `EXISTS` ...).
fn names_a_call(token: &Token) -> bool {
    let Token::Word(word) = token else {
        return false;
    };
    word.quote_style.is_some()
        || !matches!(
            word.keyword,
            Keyword::FROM
                | Keyword::JOIN
                | Keyword::IN
                | Keyword::VALUES
                | Keyword::AS
                | Keyword::EXISTS
                | Keyword::ANY
                | Keyword::ALL
                | Keyword::SOME
                | Keyword::LATERAL
                | Keyword::ON
                | Keyword::USING
                | Keyword::SELECT
                | Keyword::WHERE
                | Keyword::AND
                | Keyword::OR
                | Keyword::NOT
                | Keyword::WITH
                | Keyword::UNION
                | Keyword::INTERSECT
                | Keyword::EXCEPT
                | Keyword::INTO
                | Keyword::TABLE
                | Keyword::BY
                | Keyword::THEN
                | Keyword::ELSE
                | Keyword::WHEN
                | Keyword::RETURN
                | Keyword::ARRAY
                | Keyword::ROW
        )
}

/// The next significant token's position at or after `at`.
fn significant(tokens: &[Token], at: usize) -> Option<usize> {
    (at..tokens.len()).find(|&i| !matches!(tokens[i], Token::Whitespace(_)))
}

/// The position of the parenthesis closing the one at `open`.
fn closing(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Where an argument's clause that started at `at` ends: the first `,` or
/// `)` outside parentheses, or `stop` keyword (`ORDER` before `BY`).
fn clause_end(tokens: &[Token], at: usize, stop_at_order: bool) -> usize {
    let mut depth = 0usize;
    let mut i = at;
    while i < tokens.len() {
        match &tokens[i] {
            Token::LParen => depth += 1,
            Token::RParen if depth == 0 => return i,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => return i,
            token
                if depth == 0
                    && stop_at_order
                    && keyword(token) == Some(Keyword::ORDER)
                    && significant(tokens, i + 1)
                        .is_some_and(|b| keyword(&tokens[b]) == Some(Keyword::BY)) =>
            {
                return i;
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// The keys of `PARTITION BY` or `ORDER BY` from `at`: one key, or several
/// in parentheses. Returns them and where they end.
fn keys(tokens: &[Token], at: usize, stop_at_order: bool) -> Option<(Vec<Token>, usize)> {
    let first = significant(tokens, at)?;
    if tokens[first] == Token::LParen {
        let close = closing(tokens, first)?;
        let after = significant(tokens, close + 1)?;
        let ends = matches!(tokens[after], Token::Comma | Token::RParen)
            || (stop_at_order && keyword(&tokens[after]) == Some(Keyword::ORDER));
        if ends {
            return Some((tokens[first + 1..close].to_vec(), after));
        }
    }
    let end = clause_end(tokens, first, stop_at_order);
    let last = (first..end)
        .rev()
        .find(|&i| !matches!(tokens[i], Token::Whitespace(_)))?;
    Some((tokens[first..=last].to_vec(), end))
}

fn space() -> Token {
    Token::Whitespace(Whitespace::Space)
}

/// The tokens a table argument after `TABLE` (at `at`) becomes, and where
/// it ends; `None` if it is not one.
fn table_argument(tokens: &[Token], at: usize) -> Option<(Vec<Token>, usize)> {
    let start = significant(tokens, at)?;
    let (relation, mut next) = if tokens[start] == Token::LParen {
        let close = closing(tokens, start)?;
        let inner = significant(tokens, start + 1)?;
        let query = tokens[inner] == Token::LParen
            || matches!(
                keyword(&tokens[inner]),
                Some(Keyword::SELECT | Keyword::WITH | Keyword::VALUES | Keyword::TABLE)
            );
        if query {
            (tokens[start..=close].to_vec(), close + 1)
        } else {
            (select_all(&tokens[start + 1..close]), close + 1)
        }
    } else {
        // A (qualified) name.
        let mut end = start;
        loop {
            if !matches!(tokens.get(end), Some(Token::Word(_))) {
                return None;
            }
            end += 1;
            if tokens.get(end) != Some(&Token::Period) {
                break;
            }
            end += 1;
        }
        (select_all(&tokens[start..end]), end)
    };
    let mut out = vec![Token::make_word(TABLE_ARGUMENT, Some('"')), Token::LParen];
    out.extend(relation);
    let mut after = significant(tokens, next)?;
    if keyword(&tokens[after]) == Some(Keyword::PARTITION) {
        let by = significant(tokens, after + 1)?;
        if keyword(&tokens[by]) != Some(Keyword::BY) {
            return None;
        }
        let (partition, end) = keys(tokens, by + 1, true)?;
        out.push(Token::Comma);
        out.push(space());
        out.extend(partition);
        next = end;
        after = significant(tokens, next)?;
    }
    if keyword(&tokens[after]) == Some(Keyword::ORDER) {
        let by = significant(tokens, after + 1)?;
        if keyword(&tokens[by]) != Some(Keyword::BY) {
            return None;
        }
        let (order, end) = keys(tokens, by + 1, false)?;
        out.extend([
            space(),
            Token::make_keyword("ORDER"),
            space(),
            Token::make_keyword("BY"),
            space(),
        ]);
        out.extend(order);
        next = end;
        after = significant(tokens, next)?;
    }
    if !matches!(tokens[after], Token::Comma | Token::RParen) {
        return None;
    }
    out.push(Token::RParen);
    Some((out, next))
}

/// `(SELECT * FROM name)`.
fn select_all(name: &[Token]) -> Vec<Token> {
    let mut out = vec![
        Token::LParen,
        Token::make_keyword("SELECT"),
        space(),
        Token::Mul,
        space(),
        Token::make_keyword("FROM"),
        space(),
    ];
    out.extend(name.iter().cloned());
    out.push(Token::RParen);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_arguments_become_calls_sqlparser_reads() {
        let cases = [
            (
                "SELECT * FROM sessionize(TABLE clicks PARTITION BY user_id ORDER BY ts, 30)",
                r#"SELECT * FROM sessionize("quiver.table"((SELECT * FROM clicks), user_id ORDER BY ts), 30)"#,
            ),
            (
                "select * from f(table s.t)",
                r#"select * from f("quiver.table"((SELECT * FROM s.t)))"#,
            ),
            (
                "select * from f(TABLE(t) PARTITION BY (a, b) ORDER BY (c DESC, d))",
                r#"select * from f("quiver.table"((SELECT * FROM t), a, b ORDER BY c DESC, d))"#,
            ),
            (
                "select * from f(1, TABLE (select x from t where y > 1) order by x nulls first)",
                r#"select * from f(1, "quiver.table"((select x from t where y > 1) ORDER BY x nulls first))"#,
            ),
        ];
        for (sql, expected) in cases {
            assert_eq!(rewritten(sql).as_deref(), Some(expected), "{sql}");
        }
    }

    #[test]
    fn other_uses_of_table_are_left_alone() {
        for sql in [
            "CREATE TABLE t (a int)",
            "SELECT * FROM (TABLE t) AS x",
            "SELECT * FROM t WHERE a IN (TABLE u)",
            "SELECT 'TABLE', f('table')",
            "SELECT * FROM f(\"table\")",
        ] {
            assert_eq!(rewritten(sql), None, "{sql}");
        }
    }
}
