//! SQL text to statements.
//!
//! Two parsers cooperate: DataFusion's `DFParser` knows DataFusion's own
//! statements (`CREATE EXTERNAL TABLE`, `EXPLAIN` options, `COPY ... TO 'file'`),
//! and `datafusion-pg-catalog`'s compatibility parser knows the queries that
//! PostgreSQL clients (psql's `\d`, drivers' type lookups) send and rewrites
//! them into a form DataFusion can run. Both produce sqlparser ASTs with the
//! PostgreSQL dialect.

use datafusion::sql::parser::DFParser;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{DataType, ObjectName};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use crate::{Error, Result};

/// One statement of client SQL.
#[derive(Debug, Clone)]
pub enum Statement {
    /// What DataFusion's parser or the compatibility parser knows.
    Sql(DfStatement),
    /// `CREATE [OR REPLACE] AGGREGATE name(types) (option = value, ...)`.
    CreateAggregate(CreateAggregate),
    /// `DROP AGGREGATE [IF EXISTS] name(types) [, ...] [CASCADE | RESTRICT]`.
    DropAggregate(DropAggregate),
}

/// `CREATE AGGREGATE`, as written (PostgreSQL's syntax; sqlparser has none).
#[derive(Debug, Clone)]
pub struct CreateAggregate {
    pub or_replace: bool,
    pub name: ObjectName,
    pub args: Vec<DataType>,
    /// `name = value` options, names lower-cased, in order.
    pub options: Vec<(String, AggregateOption)>,
}

/// The value of one `CREATE AGGREGATE` option.
#[derive(Debug, Clone)]
pub enum AggregateOption {
    /// `STYPE = bigint`
    Type(DataType),
    /// `SFUNC = name` (also `COMBINEFUNC`, `FINALFUNC`)
    Function(ObjectName),
    /// Anything else: a string, number or word, as text.
    Text(String),
}

/// `DROP AGGREGATE`.
#[derive(Debug, Clone)]
pub struct DropAggregate {
    pub if_exists: bool,
    /// Each aggregate: its name and argument types (`(*)`: none).
    pub aggregates: Vec<(ObjectName, Vec<DataType>)>,
    pub cascade: bool,
}

/// Parses client SQL into DataFusion statements.
#[derive(Debug, Default)]
pub struct SqlParser {
    compat: PostgresCompatibilityParser,
}

impl SqlParser {
    /// Parses `sql` (one or more statements separated by `;`).
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>> {
        if let Some(pieces) = aggregate_statements(sql) {
            let mut statements = Vec::new();
            for piece in pieces {
                match piece {
                    Piece::Aggregate(tokens) => statements.push(parse_aggregate(tokens)?),
                    Piece::Other(text) => statements.extend(self.parse_sql(&text)?),
                }
            }
            return Ok(statements);
        }
        self.parse_sql(sql)
    }

    fn parse_sql(&self, sql: &str) -> Result<Vec<Statement>> {
        Ok(self
            .parse_datafusion(sql)?
            .into_iter()
            .map(Statement::Sql)
            .collect())
    }

    fn parse_datafusion(&self, sql: &str) -> Result<Vec<DfStatement>> {
        // Nothing may walk a statement before its depth is known (see
        // `crate::depth`): not the rewrites, not the compatibility parser.
        let datafusion = match DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {}) {
            Ok(statements) => Ok(statements
                .into_iter()
                .map(crate::depth::check_depth)
                .collect::<Result<Vec<_>>>()?),
            Err(e) => Err(e),
        };
        // The compatibility parser's rules run as it parses, and one of them
        // replaces correlated subqueries in a select list with NULL: a user
        // query with such subqueries takes the path where Quiver applies the
        // rules itself, around them (see `crate::rewrite`). The client
        // queries the compatibility parser replaces wholesale all read the
        // system catalogs, so they never take that path.
        if let Ok(statements) = &datafusion
            && statements
                .iter()
                .any(|s| is_datafusion_extension(s) || needs_shielding(s))
        {
            return Ok(statements
                .iter()
                .cloned()
                .map(|s| self.rewrite(s))
                .collect());
        }
        match self.compat.parse(sql) {
            Ok(statements) => Ok(statements
                .into_iter()
                .map(|mut s| {
                    crate::rewrite::rewrite(&mut s);
                    DfStatement::Statement(Box::new(s))
                })
                .collect()),
            Err(compat_error) => match datafusion {
                Ok(statements) => Ok(statements.into_iter().map(|s| self.rewrite(s)).collect()),
                Err(e) => {
                    tracing::debug!(%compat_error, "compatibility parser failed too");
                    Err(Error::Syntax(crate::error::syntax_message(&e)))
                }
            },
        }
    }

    fn rewrite(&self, statement: DfStatement) -> DfStatement {
        match statement {
            DfStatement::Statement(mut s) => {
                crate::rewrite::shield_subqueries(&mut s);
                let mut s = self.compat.rewrite(*s);
                crate::rewrite::rewrite(&mut s);
                DfStatement::Statement(Box::new(s))
            }
            DfStatement::Explain(mut explain) => {
                explain.statement = Box::new(self.rewrite(*explain.statement));
                DfStatement::Explain(explain)
            }
            other => other,
        }
    }
}

fn is_datafusion_extension(statement: &DfStatement) -> bool {
    !matches!(statement, DfStatement::Statement(_))
}

fn needs_shielding(statement: &DfStatement) -> bool {
    match statement {
        DfStatement::Statement(s) => crate::rewrite::needs_shielding(s),
        _ => false,
    }
}

/// A statement of a query string: an aggregate statement's tokens, or
/// the text of anything else.
enum Piece {
    Aggregate(Vec<TokenWithSpan>),
    Other(String),
}

/// The statements of `sql` split at top-level semicolons, when at least one
/// is `CREATE [OR REPLACE] AGGREGATE` or `DROP AGGREGATE` (which neither
/// DataFusion's parser nor sqlparser knows); `None` otherwise, and for
/// text that does not tokenize (the other parsers report the error).
fn aggregate_statements(sql: &str) -> Option<Vec<Piece>> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let mut statements: Vec<Vec<TokenWithSpan>> = vec![Vec::new()];
    for token in tokens {
        if token.token == Token::SemiColon {
            statements.push(Vec::new());
        } else if let Some(current) = statements.last_mut() {
            current.push(token);
        }
    }
    let is_aggregate = |tokens: &[TokenWithSpan]| {
        let words: Vec<String> = tokens
            .iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_)))
            .take(4)
            .map(|t| match &t.token {
                Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
                _ => String::new(),
            })
            .collect();
        matches!(
            words
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice(),
            ["CREATE", "AGGREGATE", ..]
                | ["CREATE", "OR", "REPLACE", "AGGREGATE"]
                | ["DROP", "AGGREGATE", ..]
        )
    };
    if !statements.iter().any(|s| is_aggregate(s)) {
        return None;
    }
    Some(
        statements
            .into_iter()
            .filter(|s| {
                s.iter()
                    .any(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
            })
            .map(|s| {
                if is_aggregate(&s) {
                    Piece::Aggregate(s)
                } else {
                    Piece::Other(s.iter().map(|t| t.token.to_string()).collect())
                }
            })
            .collect(),
    )
}

fn parse_aggregate(tokens: Vec<TokenWithSpan>) -> Result<Statement> {
    let tokens = tokens
        .into_iter()
        .filter(|t| {
            !matches!(
                t.token,
                Token::Whitespace(Whitespace::SingleLineComment { .. })
                    | Token::Whitespace(Whitespace::MultiLineComment(_))
            )
        })
        .collect();
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let statement = if parser.parse_keyword(Keyword::DROP) {
        parse_drop_aggregate(&mut parser)
    } else {
        parse_create_aggregate(&mut parser)
    }
    .map_err(|e| {
        Error::Syntax(crate::error::syntax_message(
            &datafusion::error::DataFusionError::from(e),
        ))
    })?;
    if parser.peek_token().token != Token::EOF {
        return Err(Error::Syntax(format!(
            "syntax error at or near \"{}\"",
            parser.peek_token().token
        )));
    }
    Ok(statement)
}

/// `(type, ...)` or `(*)`.
fn aggregate_signature(parser: &mut Parser) -> std::result::Result<Vec<DataType>, ParserError> {
    parser.expect_token(&Token::LParen)?;
    if parser.consume_token(&Token::Mul) {
        parser.expect_token(&Token::RParen)?;
        return Ok(Vec::new());
    }
    if parser.consume_token(&Token::RParen) {
        return Ok(Vec::new());
    }
    let args = parser.parse_comma_separated(Parser::parse_data_type)?;
    parser.expect_token(&Token::RParen)?;
    Ok(args)
}

fn parse_create_aggregate(parser: &mut Parser) -> std::result::Result<Statement, ParserError> {
    parser.expect_keyword(Keyword::CREATE)?;
    let or_replace = parser.parse_keywords(&[Keyword::OR, Keyword::REPLACE]);
    parser.expect_keyword(Keyword::AGGREGATE)?;
    let name = parser.parse_object_name(false)?;
    let args = aggregate_signature(parser)?;
    parser.expect_token(&Token::LParen)?;
    let options = parser.parse_comma_separated(|parser| {
        let option = parser.parse_identifier()?.value.to_ascii_lowercase();
        parser.expect_token(&Token::Eq)?;
        let value = match option.as_str() {
            "stype" => AggregateOption::Type(parser.parse_data_type()?),
            "sfunc" | "combinefunc" | "finalfunc" => {
                AggregateOption::Function(parser.parse_object_name(false)?)
            }
            _ => {
                let token = parser.next_token();
                AggregateOption::Text(match token.token {
                    Token::SingleQuotedString(s) | Token::EscapedStringLiteral(s) => s,
                    Token::DollarQuotedString(s) => s.value,
                    Token::Number(n, _) => n,
                    Token::Word(w) => w.value,
                    _ => return parser.expected("a value", token),
                })
            }
        };
        Ok((option, value))
    })?;
    parser.expect_token(&Token::RParen)?;
    Ok(Statement::CreateAggregate(CreateAggregate {
        or_replace,
        name,
        args,
        options,
    }))
}

fn parse_drop_aggregate(parser: &mut Parser) -> std::result::Result<Statement, ParserError> {
    parser.expect_keyword(Keyword::AGGREGATE)?;
    let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let aggregates = parser.parse_comma_separated(|parser| {
        let name = parser.parse_object_name(false)?;
        let args = aggregate_signature(parser)?;
        Ok((name, args))
    })?;
    let cascade = matches!(
        parser.parse_one_of_keywords(&[Keyword::CASCADE, Keyword::RESTRICT]),
        Some(Keyword::CASCADE)
    );
    Ok(Statement::DropAggregate(DropAggregate {
        if_exists,
        aggregates,
        cascade,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_tables_and_copy_from_stdin_both_parse() {
        let parser = SqlParser::default();
        let s = parser
            .parse("CREATE EXTERNAL TABLE e STORED AS CSV LOCATION '/tmp/x.csv' OPTIONS ('format.has_header' 'true')")
            .expect("parses");
        assert!(matches!(
            s[0],
            Statement::Sql(DfStatement::CreateExternalTable(_))
        ));
        let s = parser
            .parse("COPY t FROM STDIN CSV HEADER")
            .expect("parses");
        assert!(
            matches!(&s[0], Statement::Sql(DfStatement::Statement(s)) if matches!(**s, datafusion::sql::sqlparser::ast::Statement::Copy { .. }))
        );
        let s = parser.parse("select 1; select 2").expect("parses");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn aggregate_statements_parse_between_others() {
        let parser = SqlParser::default();
        let s = parser
            .parse(
                "select 1; CREATE OR REPLACE AGGREGATE m(double precision) (MODULE = 'f.wasm', SYMBOL = 'median'); \
                 create aggregate s(int8) (sfunc = add, stype = bigint, initcond = '0'); \
                 DROP AGGREGATE IF EXISTS m(float8), n(*) CASCADE; select ';'",
            )
            .expect("parses");
        assert_eq!(s.len(), 5);
        let Statement::CreateAggregate(create) = &s[1] else {
            panic!("{:?}", s[1]);
        };
        assert!(create.or_replace);
        assert_eq!(create.options.len(), 2);
        assert!(
            matches!(&s[2], Statement::CreateAggregate(c) if matches!(c.options[1].1, AggregateOption::Type(_)))
        );
        assert!(
            matches!(&s[3], Statement::DropAggregate(d) if d.if_exists && d.cascade && d.aggregates.len() == 2)
        );
        assert!(matches!(&s[4], Statement::Sql(_)));
        assert_eq!(
            parser
                .parse("CREATE AGGREGATE m(int) MODULE")
                .unwrap_err()
                .sqlstate(),
            "42601"
        );
    }

    #[test]
    fn syntax_errors_are_42601() {
        let e = SqlParser::default().parse("SELEC 1").unwrap_err();
        assert_eq!(e.sqlstate(), "42601");
    }
}
