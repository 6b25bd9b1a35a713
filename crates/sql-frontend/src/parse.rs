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
use datafusion::sql::sqlparser::ast::{
    DataType, Grantee, GranteeName, GranteesType, ObjectName, Privileges,
};
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
    /// `GRANT privileges ON LANGUAGE name [, ...] TO grantee [, ...]`, or
    /// `REVOKE ... FROM ...` (sqlparser knows no `LANGUAGE` objects).
    LanguageGrant(LanguageGrant),
    /// `GRANT role [, ...] TO role [, ...]`, or `REVOKE role [, ...] FROM
    /// role [, ...]` (sqlparser reads only privileges there).
    RoleGrant(RoleGrant),
    /// `CREATE BUCKET [IF NOT EXISTS] name`.
    CreateBucket { name: String, if_not_exists: bool },
    /// `DROP BUCKET [IF EXISTS] name [, ...]`.
    DropBucket { names: Vec<String>, if_exists: bool },
    /// `COPY BUCKET name FROM STDIN [[WITH] (options)]`: the `COPY` as if
    /// `name` were a table.
    CopyBucket(Box<datafusion::sql::sqlparser::ast::Statement>),
    /// `ALTER SEQUENCE [IF EXISTS] name OWNED BY table.column | NONE`
    /// (sqlparser reads no `ALTER SEQUENCE`).
    AlterSequenceOwnedBy {
        name: ObjectName,
        if_exists: bool,
        owned_by: ObjectName,
    },
}

/// `GRANT`/`REVOKE` of roles to roles.
#[derive(Debug, Clone)]
pub struct RoleGrant {
    /// `GRANT` (or `REVOKE`).
    pub give: bool,
    /// The roles granted.
    pub roles: Vec<String>,
    /// The roles they are granted to.
    pub members: Vec<String>,
}

/// `GRANT`/`REVOKE ... ON LANGUAGE`.
#[derive(Debug, Clone)]
pub struct LanguageGrant {
    /// `GRANT` (or `REVOKE`).
    pub give: bool,
    pub privileges: Privileges,
    pub languages: Vec<String>,
    pub grantees: Vec<Grantee>,
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
        let reordered = identity_options_in_order(sql);
        let sql = reordered.as_deref().unwrap_or(sql);
        let table_arguments = crate::relation_arguments::rewritten(sql);
        let sql = table_arguments.as_deref().unwrap_or(sql);
        if let Some(pieces) = own_statements(sql) {
            let mut statements = Vec::new();
            for piece in pieces {
                match piece {
                    Piece::Own(kind, tokens) => statements.push(parse_own(kind, tokens)?),
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
        // Quiver applies the compatibility parser's rules itself, to the
        // statements DataFusion parsed, unless the compatibility parser may
        // replace the text (it replaces whole client queries, each of which
        // names the system catalogs or a setting; see `may_be_replaced`):
        // parsing the text once more would give the same statements. It
        // also does so whatever the text for a user query with correlated
        // subqueries in a select list (one of the rules, run as the
        // compatibility parser parses, replaces them with NULL: Quiver runs
        // the rules around them, see `crate::rewrite`); the client queries
        // the compatibility parser replaces all read the system catalogs, so
        // they never need that.
        if let Ok(statements) = &datafusion
            && (!may_be_replaced(sql)
                || reads_search_path(sql)
                || statements.iter().any(|s| {
                    is_datafusion_extension(s) || needs_shielding(s) || reads_column_defaults(s)
                }))
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
                crate::rewrite::column_defaults(&mut s);
                crate::rewrite::bucket_function(&mut s);
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

/// Whether the compatibility parser may replace (part of) `sql` with a
/// query of its own: every query it replaces reads `pg_catalog` tables or
/// calls `current_setting`. A cheap test on the text, made before parsing
/// it a second time.
fn may_be_replaced(sql: &str) -> bool {
    let sql = sql.to_ascii_lowercase();
    sql.contains("pg_") || sql.contains("current_setting")
}

/// Whether `sql` has Grafana's subquery of the schemas on the search path
/// (`... FROM generate_series(array_lower(string_to_array(
/// current_setting('search_path'), ','), 1), ...) AS i,
/// string_to_array(current_setting('search_path'), ',') s`). The
/// compatibility parser replaces that subquery with `''` (it was written
/// when DataFusion had no `current_setting`), so `IN (...)` matched
/// nothing — only when written in lower case, as Grafana writes it — and
/// Grafana's table list named every table with its schema. Quiver has
/// `current_setting` and runs the subquery as written.
fn reads_search_path(sql: &str) -> bool {
    let compact: String = sql
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    compact.contains("generate_series(array_lower(string_to_array(current_setting('search_path')")
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

/// Whether `statement` reads column defaults in a subquery the
/// compatibility parser would replace (see `crate::rewrite::column_defaults`).
fn reads_column_defaults(statement: &DfStatement) -> bool {
    match statement {
        DfStatement::Statement(s) => crate::rewrite::reads_column_defaults(s),
        _ => false,
    }
}

/// The options of an identity column (`GENERATED ... AS IDENTITY (START
/// WITH 10 INCREMENT BY 10)`), which PostgreSQL takes in any order, put in
/// the one order sqlparser reads; `None` when `sql` has none to reorder.
fn identity_options_in_order(sql: &str) -> Option<String> {
    if !sql.to_ascii_uppercase().contains("IDENTITY") {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let keyword = |token: &Token| match token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
        _ => None,
    };
    let significant = |at: usize| {
        tokens[at..]
            .iter()
            .position(|t| !matches!(t, Token::Whitespace(_)))
            .map(|offset| at + offset)
    };
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    let mut changed = false;
    let mut at = 0;
    while at < tokens.len() {
        let token = &tokens[at];
        out.push(token.clone());
        at += 1;
        if keyword(token) != Some(Keyword::IDENTITY) {
            continue;
        }
        let Some(open) = significant(at).filter(|&i| tokens[i] == Token::LParen) else {
            continue;
        };
        let Some(close) = tokens[open..]
            .iter()
            .position(|t| *t == Token::RParen)
            .map(|offset| open + offset)
        else {
            continue;
        };
        // Each option starts with its keyword (NO takes the next one's
        // place); sqlparser reads them in this order.
        const ORDER: [Keyword; 6] = [
            Keyword::INCREMENT,
            Keyword::MINVALUE,
            Keyword::MAXVALUE,
            Keyword::START,
            Keyword::CACHE,
            Keyword::CYCLE,
        ];
        let mut options: Vec<(usize, Vec<Token>)> = Vec::new();
        let mut pending_no = false;
        for token in &tokens[open + 1..close] {
            if let (Token::Whitespace(_), Some(last)) = (token, options.last_mut()) {
                last.1.push(token.clone());
                continue;
            }
            let word = keyword(token);
            let rank = word.and_then(|k| ORDER.iter().position(|o| *o == k));
            match (word, rank) {
                (Some(Keyword::NO), _) if !pending_no => {
                    options.push((usize::MAX, vec![token.clone()]));
                    pending_no = true;
                    continue;
                }
                (_, Some(rank)) if pending_no => {
                    if let Some(last) = options.last_mut() {
                        last.0 = rank;
                        last.1.push(token.clone());
                    }
                }
                (_, Some(rank)) => options.push((rank, vec![token.clone()])),
                _ => match options.last_mut() {
                    Some(last) => last.1.push(token.clone()),
                    None => options.push((0, vec![token.clone()])),
                },
            }
            pending_no = false;
        }
        let before: Vec<usize> = options.iter().map(|(rank, _)| *rank).collect();
        options.sort_by_key(|(rank, _)| *rank);
        changed |= options.iter().map(|(rank, _)| *rank).ne(before);
        out.extend(tokens[at..=open].iter().cloned());
        for (_, mut option) in options {
            while matches!(option.last(), Some(Token::Whitespace(_))) {
                option.pop();
            }
            out.extend(option);
            out.push(Token::Whitespace(Whitespace::Space));
        }
        out.push(Token::RParen);
        at = close + 1;
    }
    changed.then(|| out.iter().map(ToString::to_string).collect())
}

/// A statement of a query string: the tokens of a statement Quiver parses
/// itself, or the text of anything else.
enum Piece {
    Own(Own, Vec<TokenWithSpan>),
    Other(String),
}

/// The statements Quiver parses itself.
#[derive(Clone, Copy)]
enum Own {
    /// `CREATE [OR REPLACE] AGGREGATE`.
    CreateAggregate,
    /// `DROP AGGREGATE`.
    DropAggregate,
    /// `GRANT`/`REVOKE ... ON LANGUAGE`.
    LanguageGrant,
    /// `GRANT`/`REVOKE` of roles (no `ON`).
    RoleGrant,
    /// `CREATE SEQUENCE`, whose options PostgreSQL takes in any order
    /// (sqlparser only in one: not pg_dump's).
    CreateSequence,
    /// `ALTER SEQUENCE`, and `ALTER VIEW ... OWNER TO` (pg_dump's), which
    /// sqlparser does not read.
    AlterRelation,
    /// `CREATE BUCKET`, `DROP BUCKET`, `COPY BUCKET`.
    Bucket,
}

/// Which of Quiver's own statements `tokens` are, if any.
fn own_kind(tokens: &[TokenWithSpan]) -> Option<Own> {
    let words: Vec<String> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .map(|t| match &t.token {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
            _ => String::new(),
        })
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["CREATE", "AGGREGATE", ..] | ["CREATE", "OR", "REPLACE", "AGGREGATE", ..] => {
            Some(Own::CreateAggregate)
        }
        ["DROP", "AGGREGATE", ..] => Some(Own::DropAggregate),
        ["ALTER", "SEQUENCE", ..] => Some(Own::AlterRelation),
        ["ALTER", "VIEW", .., "OWNER", "TO", _] => Some(Own::AlterRelation),
        ["CREATE", "SEQUENCE", ..] | ["CREATE", "TEMP" | "TEMPORARY", "SEQUENCE", ..] => {
            Some(Own::CreateSequence)
        }
        ["GRANT" | "REVOKE", rest @ ..] if rest.windows(2).any(|w| w == ["ON", "LANGUAGE"]) => {
            Some(Own::LanguageGrant)
        }
        ["GRANT" | "REVOKE", rest @ ..] if !rest.contains(&"ON") => Some(Own::RoleGrant),
        ["CREATE" | "DROP" | "COPY", "BUCKET", ..] => Some(Own::Bucket),
        _ => None,
    }
}

/// The statements of `sql` split at top-level semicolons, when at least one
/// is a statement neither DataFusion's parser nor sqlparser knows: `CREATE
/// [OR REPLACE] AGGREGATE`, `DROP AGGREGATE`, `GRANT`/`REVOKE ... ON
/// LANGUAGE`, `GRANT`/`REVOKE` of roles, `CREATE SEQUENCE`; `None` otherwise, and for text that does not tokenize (the
/// other parsers report the error).
fn own_statements(sql: &str) -> Option<Vec<Piece>> {
    // Each of them has one of these words; most text has none, and is not
    // tokenized here.
    let upper = sql.to_ascii_uppercase();
    if ![
        "AGGREGATE",
        "GRANT",
        "REVOKE",
        "SEQUENCE",
        "OWNER",
        "BUCKET",
    ]
    .iter()
    .any(|word| upper.contains(word))
    {
        return None;
    }
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
    if !statements.iter().any(|s| own_kind(s).is_some()) {
        return None;
    }
    Some(
        statements
            .into_iter()
            .filter(|s| {
                s.iter()
                    .any(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
            })
            .map(|s| match own_kind(&s) {
                Some(kind) => Piece::Own(kind, s),
                None => Piece::Other(s.iter().map(|t| t.token.to_string()).collect()),
            })
            .collect(),
    )
}

fn parse_own(kind: Own, tokens: Vec<TokenWithSpan>) -> Result<Statement> {
    if let Own::AlterRelation = kind {
        return parse_alter_relation(&tokens);
    }
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
    // Whether a grant's first keyword is GRANT (or REVOKE).
    let give = |parser: &mut Parser| {
        parser.parse_one_of_keywords(&[Keyword::GRANT, Keyword::REVOKE]) == Some(Keyword::GRANT)
    };
    let statement = match kind {
        Own::CreateAggregate => parse_create_aggregate(&mut parser),
        Own::DropAggregate => parser
            .expect_keyword(Keyword::DROP)
            .and_then(|_| parse_drop_aggregate(&mut parser)),
        Own::LanguageGrant => {
            let give = give(&mut parser);
            parse_language_grant(&mut parser, give)
        }
        Own::RoleGrant => {
            let give = give(&mut parser);
            parse_role_grant(&mut parser, give)
        }
        Own::CreateSequence => parse_create_sequence(&mut parser),
        Own::Bucket => parse_bucket(&mut parser),
        Own::AlterRelation => unreachable!("parsed above"),
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

/// `CREATE [TEMPORARY] SEQUENCE [IF NOT EXISTS] name [options]`, the
/// options in any order, as sqlparser's statement.
fn parse_create_sequence(parser: &mut Parser) -> std::result::Result<Statement, ParserError> {
    use datafusion::sql::sqlparser::ast::{SequenceOptions, Statement as Sql};
    parser.expect_keyword(Keyword::CREATE)?;
    let temporary = parser
        .parse_one_of_keywords(&[Keyword::TEMP, Keyword::TEMPORARY])
        .is_some();
    parser.expect_keyword(Keyword::SEQUENCE)?;
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parser.parse_object_name(false)?;
    let (mut data_type, mut options, mut owned_by) = (None, Vec::new(), None);
    loop {
        if parser.parse_keyword(Keyword::AS) {
            data_type = Some(parser.parse_data_type()?);
        } else if parser.parse_keyword(Keyword::INCREMENT) {
            let by = parser.parse_keyword(Keyword::BY);
            options.push(SequenceOptions::IncrementBy(parser.parse_number()?, by));
        } else if parser.parse_keyword(Keyword::MINVALUE) {
            options.push(SequenceOptions::MinValue(Some(parser.parse_number()?)));
        } else if parser.parse_keyword(Keyword::MAXVALUE) {
            options.push(SequenceOptions::MaxValue(Some(parser.parse_number()?)));
        } else if parser.parse_keywords(&[Keyword::NO, Keyword::MINVALUE]) {
            options.push(SequenceOptions::MinValue(None));
        } else if parser.parse_keywords(&[Keyword::NO, Keyword::MAXVALUE]) {
            options.push(SequenceOptions::MaxValue(None));
        } else if parser.parse_keyword(Keyword::START) {
            let with = parser.parse_keyword(Keyword::WITH);
            options.push(SequenceOptions::StartWith(parser.parse_number()?, with));
        } else if parser.parse_keyword(Keyword::CACHE) {
            options.push(SequenceOptions::Cache(parser.parse_number()?));
        } else if parser.parse_keyword(Keyword::CYCLE) {
            options.push(SequenceOptions::Cycle(false));
        } else if parser.parse_keywords(&[Keyword::NO, Keyword::CYCLE]) {
            options.push(SequenceOptions::Cycle(true));
        } else if parser.parse_keywords(&[Keyword::OWNED, Keyword::BY]) {
            owned_by = Some(parser.parse_object_name(false)?);
        } else {
            break;
        }
    }
    Ok(Statement::Sql(DfStatement::Statement(Box::new(
        Sql::CreateSequence {
            temporary,
            if_not_exists,
            name,
            data_type,
            sequence_options: options,
            owned_by,
        },
    ))))
}

/// `ALTER SEQUENCE|VIEW [IF EXISTS] name OWNER TO role`, which is `ALTER
/// TABLE`'s (PostgreSQL takes `ALTER TABLE` of a view or a sequence too),
/// and `ALTER SEQUENCE [IF EXISTS] name OWNED BY table.column | NONE`;
/// other `ALTER SEQUENCE` forms are not supported yet (0A000).
fn parse_alter_relation(tokens: &[TokenWithSpan]) -> Result<Statement> {
    let text: String = tokens.iter().map(|t| t.token.to_string()).collect();
    let dialect = PostgreSqlDialect {};
    let syntax = |e: ParserError| {
        Error::Syntax(crate::error::syntax_message(
            &datafusion::error::DataFusionError::from(e),
        ))
    };
    let mut parser = Parser::new(&dialect).try_with_sql(&text).map_err(syntax)?;
    parser.expect_keyword(Keyword::ALTER).map_err(syntax)?;
    let kind = parser
        .expect_one_of_keywords(&[Keyword::SEQUENCE, Keyword::VIEW])
        .map_err(syntax)?;
    let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let name = parser.parse_object_name(false).map_err(syntax)?;
    if parser.parse_keywords(&[Keyword::OWNER, Keyword::TO]) {
        let owner = parser.parse_identifier().map_err(syntax)?;
        expect_end(&mut parser)?;
        let if_exists = if if_exists { "IF EXISTS " } else { "" };
        let statement = format!("ALTER TABLE {if_exists}{name} OWNER TO {owner}");
        let mut parsed = DFParser::parse_sql_with_dialect(&statement, &dialect)
            .map_err(|e| Error::Syntax(crate::error::syntax_message(&e)))?;
        return parsed
            .pop_front()
            .map(Statement::Sql)
            .ok_or_else(|| Error::Syntax(format!("cannot read {text}")));
    }
    if kind == Keyword::SEQUENCE && parser.parse_keywords(&[Keyword::OWNED, Keyword::BY]) {
        let owned_by = parser.parse_object_name(false).map_err(syntax)?;
        expect_end(&mut parser)?;
        return Ok(Statement::AlterSequenceOwnedBy {
            name,
            if_exists,
            owned_by,
        });
    }
    Err(Error::FeatureNotSupported(format!(
        "{} is not supported yet (only OWNER TO{})",
        text.trim(),
        if kind == Keyword::SEQUENCE {
            " and OWNED BY"
        } else {
            ""
        }
    )))
}

/// Fails unless `parser` is at the end of its statement.
fn expect_end(parser: &mut Parser) -> Result<()> {
    match parser.peek_token().token {
        Token::EOF => Ok(()),
        token => Err(Error::Syntax(format!(
            "syntax error at or near \"{token}\""
        ))),
    }
}

/// `CREATE BUCKET [IF NOT EXISTS] name`, `DROP BUCKET [IF EXISTS] name [,
/// ...]` or `COPY BUCKET name FROM STDIN ...`.
fn parse_bucket(parser: &mut Parser) -> std::result::Result<Statement, ParserError> {
    let bucket_name = |parser: &mut Parser| -> std::result::Result<String, ParserError> {
        Ok(crate::names::folded(&parser.parse_identifier()?))
    };
    match parser.expect_one_of_keywords(&[Keyword::CREATE, Keyword::DROP, Keyword::COPY])? {
        Keyword::CREATE => {
            parser.expect_keyword(Keyword::BUCKET)?;
            let if_not_exists =
                parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = bucket_name(parser)?;
            Ok(Statement::CreateBucket {
                name,
                if_not_exists,
            })
        }
        Keyword::DROP => {
            parser.expect_keyword(Keyword::BUCKET)?;
            let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let names = parser.parse_comma_separated(bucket_name)?;
            Ok(Statement::DropBucket { names, if_exists })
        }
        _ => {
            // The rest is a COPY of a table called as the bucket.
            parser.expect_keyword(Keyword::BUCKET)?;
            let copy = parser.parse_copy()?;
            Ok(Statement::CopyBucket(Box::new(copy)))
        }
    }
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

/// The rest of `GRANT privileges ON LANGUAGE name [, ...] TO grantee [,
/// ...]` (`give`) or `REVOKE ... FROM grantee [, ...] [CASCADE |
/// RESTRICT]`, after its first keyword.
fn parse_language_grant(
    parser: &mut Parser,
    give: bool,
) -> std::result::Result<Statement, ParserError> {
    let privileges = if parser.parse_keyword(Keyword::ALL) {
        Privileges::All {
            with_privileges_keyword: parser.parse_keyword(Keyword::PRIVILEGES),
        }
    } else {
        Privileges::Actions(parser.parse_actions_list()?)
    };
    parser.expect_keywords(&[Keyword::ON, Keyword::LANGUAGE])?;
    let languages =
        parser.parse_comma_separated(|p| Ok(crate::names::folded(&p.parse_identifier()?)))?;
    parser.expect_keyword(if give { Keyword::TO } else { Keyword::FROM })?;
    let grantees = parser.parse_comma_separated(|p| {
        if p.parse_keyword(Keyword::PUBLIC) {
            return Ok(Grantee {
                grantee_type: GranteesType::Public,
                name: None,
            });
        }
        let name = p.parse_object_name(false)?;
        Ok(Grantee {
            grantee_type: GranteesType::None,
            name: Some(GranteeName::ObjectName(name)),
        })
    })?;
    if !give {
        // Without grant options nothing depends on a grant: both mean the same.
        let _ = parser.parse_one_of_keywords(&[Keyword::CASCADE, Keyword::RESTRICT]);
    }
    Ok(Statement::LanguageGrant(LanguageGrant {
        give,
        privileges,
        languages,
        grantees,
    }))
}

/// The rest of `GRANT role [, ...] TO role [, ...]` (`give`) or `REVOKE
/// role [, ...] FROM role [, ...] [CASCADE | RESTRICT]`.
fn parse_role_grant(
    parser: &mut Parser,
    give: bool,
) -> std::result::Result<Statement, ParserError> {
    let roles = parser.parse_comma_separated(role_name)?;
    parser.expect_keyword(if give { Keyword::TO } else { Keyword::FROM })?;
    let members = parser.parse_comma_separated(role_name)?;
    if !give {
        // Without grant options nothing depends on a grant: both mean the same.
        let _ = parser.parse_one_of_keywords(&[Keyword::CASCADE, Keyword::RESTRICT]);
    }
    Ok(Statement::RoleGrant(RoleGrant {
        give,
        roles,
        members,
    }))
}

/// A role's name, as `CREATE ROLE` stores it.
fn role_name(parser: &mut Parser) -> std::result::Result<String, ParserError> {
    Ok(crate::names::folded(&parser.parse_identifier()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_sequence_options_parse_in_any_order() {
        assert_eq!(
            identity_options_in_order(
                "CREATE TABLE t (id int GENERATED BY DEFAULT AS IDENTITY (START WITH 10 NO CYCLE INCREMENT BY -1 NO MINVALUE), b int)"
            )
            .as_deref(),
            Some(
                "CREATE TABLE t (id int GENERATED BY DEFAULT AS IDENTITY (INCREMENT BY -1 NO MINVALUE START WITH 10 NO CYCLE ), b int)"
            )
        );
        // Already in order, or no options: left as written.
        assert_eq!(
            identity_options_in_order("CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY)"),
            None
        );
        let parser = SqlParser::default();
        let s = parser
            .parse("CREATE SEQUENCE s START WITH 5 AS smallint OWNED BY t.id INCREMENT 2 CYCLE")
            .expect("parses");
        let Statement::Sql(DfStatement::Statement(s)) = &s[0] else {
            panic!("{s:?}");
        };
        assert!(matches!(
            s.as_ref(),
            datafusion::sql::sqlparser::ast::Statement::CreateSequence { sequence_options, owned_by: Some(_), data_type: Some(_), .. }
                if sequence_options.len() == 3
        ));
    }

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
    fn grants_on_languages_and_of_roles_parse_beside_sqlparsers() {
        let parser = SqlParser::default();
        let s = parser
            .parse(
                "GRANT USAGE ON LANGUAGE WASM TO alice, PUBLIC; \
                 REVOKE ALL PRIVILEGES ON LANGUAGE wasm FROM alice CASCADE; \
                 GRANT pg_read_server_files TO Alice, \"Bob\"; \
                 REVOKE pg_write_server_files FROM alice; \
                 GRANT SELECT ON t TO alice",
            )
            .expect("parses");
        assert!(matches!(&s[0], Statement::LanguageGrant(g)
            if g.give && g.languages == ["wasm"] && g.grantees.len() == 2));
        assert!(matches!(&s[1], Statement::LanguageGrant(g)
            if !g.give && matches!(g.privileges, Privileges::All { .. })));
        assert!(matches!(&s[2], Statement::RoleGrant(g)
            if g.give && g.roles == ["pg_read_server_files"] && g.members == ["alice", "Bob"]));
        assert!(matches!(&s[3], Statement::RoleGrant(g) if !g.give));
        assert!(matches!(&s[4], Statement::Sql(_)));
        let error = parser
            .parse("GRANT USAGE ON LANGUAGE TO alice")
            .unwrap_err();
        assert_eq!(error.sqlstate(), "42601");
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
