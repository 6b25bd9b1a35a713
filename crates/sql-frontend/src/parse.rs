//! SQL text to statements.
//!
//! Two parsers cooperate: DataFusion's `DFParser` knows DataFusion's own
//! statements (`CREATE EXTERNAL TABLE`, `EXPLAIN` options, `COPY ... TO 'file'`),
//! and `datafusion-pg-catalog`'s compatibility parser knows the queries that
//! PostgreSQL clients (psql's `\d`, drivers' type lookups) send and rewrites
//! them into a form DataFusion can run. Both produce sqlparser ASTs with the
//! PostgreSQL dialect.

use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use crate::{Error, Result};

/// Parses client SQL into DataFusion statements.
#[derive(Debug, Default)]
pub struct SqlParser {
    compat: PostgresCompatibilityParser,
}

impl SqlParser {
    /// Parses `sql` (one or more statements separated by `;`).
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>> {
        let datafusion = DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {});
        if let Ok(statements) = &datafusion
            && statements.iter().any(is_datafusion_extension)
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
                .map(|s| Statement::Statement(Box::new(s)))
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

    fn rewrite(&self, statement: Statement) -> Statement {
        match statement {
            Statement::Statement(s) => Statement::Statement(Box::new(self.compat.rewrite(*s))),
            Statement::Explain(mut explain) => {
                explain.statement = Box::new(self.rewrite(*explain.statement));
                Statement::Explain(explain)
            }
            other => other,
        }
    }
}

fn is_datafusion_extension(statement: &Statement) -> bool {
    !matches!(statement, Statement::Statement(_))
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
        assert!(matches!(s[0], Statement::CreateExternalTable(_)));
        let s = parser
            .parse("COPY t FROM STDIN CSV HEADER")
            .expect("parses");
        assert!(
            matches!(&s[0], Statement::Statement(s) if matches!(**s, datafusion::sql::sqlparser::ast::Statement::Copy { .. }))
        );
        let s = parser.parse("select 1; select 2").expect("parses");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn syntax_errors_are_42601() {
        let e = SqlParser::default().parse("SELEC 1").unwrap_err();
        assert_eq!(e.sqlstate(), "42601");
    }
}
