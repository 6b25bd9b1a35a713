// pgjdbc (Debian's libpostgresql-jdbc-java) against a Quiver server
// (QUIVER_HOST, QUIVER_PORT): prepared statements, batches with their update
// counts, setFetchSize portals, DatabaseMetaData as BI tools' schema sync
// reads it (Metabase, DBeaver, Tableau: tables, columns, primary keys,
// foreign keys, indexes). Run as a single-file program by
// tests/e2e/clients.rs; exits non-zero on the first failure.

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

public class QuiverJdbcTest {
    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    /** The rows of `rs`, each as "COLUMN=value ..." of `columns`. */
    static List<String> rows(ResultSet rs, String... columns) throws SQLException {
        List<String> rows = new ArrayList<>();
        try (rs) {
            while (rs.next()) {
                List<String> values = new ArrayList<>();
                for (String column : columns) {
                    values.add(column + "=" + rs.getString(column));
                }
                rows.add(String.join(" ", values));
            }
        }
        return rows;
    }

    /** What a BI tool's schema sync reads of a table with keys and defaults. */
    static void schemaSync(Connection conn, DatabaseMetaData meta, String table) throws SQLException {
        try (Statement st = conn.createStatement()) {
            st.execute("CREATE TABLE " + table + " (id SERIAL PRIMARY KEY, code TEXT UNIQUE, note VARCHAR(10) DEFAULT 'x')");
            st.execute("COMMENT ON TABLE " + table + " IS 'with keys'");
        }
        String[] types = {"TABLE", "VIEW", "FOREIGN TABLE", "MATERIALIZED VIEW", "PARTITIONED TABLE"};
        List<String> tables = rows(meta.getTables(null, "public", table, types), "TABLE_NAME", "TABLE_TYPE", "REMARKS");
        check(tables.equals(List.of("TABLE_NAME=" + table + " TABLE_TYPE=TABLE REMARKS=with keys")), "getTables " + tables);
        List<String> columns = rows(meta.getColumns(null, "public", table, "%"),
                "COLUMN_NAME", "TYPE_NAME", "COLUMN_SIZE", "NULLABLE", "IS_AUTOINCREMENT");
        check(columns.equals(List.of(
                "COLUMN_NAME=id TYPE_NAME=serial COLUMN_SIZE=10 NULLABLE=0 IS_AUTOINCREMENT=YES",
                "COLUMN_NAME=code TYPE_NAME=text COLUMN_SIZE=2147483647 NULLABLE=1 IS_AUTOINCREMENT=NO",
                "COLUMN_NAME=note TYPE_NAME=varchar COLUMN_SIZE=10 NULLABLE=1 IS_AUTOINCREMENT=NO")),
                "getColumns " + columns);
        // Defaults as written back (PostgreSQL writes the sequence as the
        // search path finds it, and the text's cast: 'x'::character varying).
        List<String> defaults = rows(meta.getColumns(null, "public", table, "%"), "COLUMN_DEF");
        check(defaults.get(0).matches("COLUMN_DEF=nextval\\('(public\\.)?" + table + "_id_seq'::regclass\\)")
                && defaults.get(1).equals("COLUMN_DEF=null")
                && defaults.get(2).startsWith("COLUMN_DEF='x'"), "COLUMN_DEF " + defaults);
        List<String> keys = rows(meta.getPrimaryKeys(null, "public", table), "COLUMN_NAME", "KEY_SEQ", "PK_NAME");
        check(keys.equals(List.of("COLUMN_NAME=id KEY_SEQ=1 PK_NAME=" + table + "_pkey")), "getPrimaryKeys " + keys);
        List<String> imported = rows(meta.getImportedKeys(null, "public", table), "FKCOLUMN_NAME");
        check(imported.isEmpty(), "getImportedKeys " + imported);
        List<String> exported = rows(meta.getExportedKeys(null, "public", table), "FKCOLUMN_NAME");
        check(exported.isEmpty(), "getExportedKeys " + exported);
        List<String> indexes = rows(meta.getIndexInfo(null, "public", table, false, true),
                "INDEX_NAME", "NON_UNIQUE", "ORDINAL_POSITION", "COLUMN_NAME", "ASC_OR_DESC");
        check(indexes.equals(List.of(
                "INDEX_NAME=" + table + "_code_key NON_UNIQUE=f ORDINAL_POSITION=1 COLUMN_NAME=code ASC_OR_DESC=A",
                "INDEX_NAME=" + table + "_pkey NON_UNIQUE=f ORDINAL_POSITION=1 COLUMN_NAME=id ASC_OR_DESC=A")),
                "getIndexInfo " + indexes);
        // The key is kept: a second row with the same id fails as in PostgreSQL.
        try (Statement st = conn.createStatement()) {
            st.execute("INSERT INTO " + table + " (id, code) VALUES (1, 'a')");
            st.execute("INSERT INTO " + table + " (id, code) VALUES (1, 'b')");
            check(false, "a duplicate key was inserted");
        } catch (SQLException e) {
            check("23505".equals(e.getSQLState()), "SQLSTATE " + e.getSQLState() + ": " + e.getMessage());
        }
        try (Statement st = conn.createStatement()) {
            st.execute("DROP TABLE " + table);
        }
    }

    public static void main(String[] args) throws Exception {
        String host = System.getenv().getOrDefault("QUIVER_HOST", "127.0.0.1");
        String port = System.getenv().getOrDefault("QUIVER_PORT", "5433");
        String url = "jdbc:postgresql://" + host + ":" + port + "/quiver?user=quiver";
        String table = "jdbc_" + ProcessHandle.current().pid();
        try (Connection conn = DriverManager.getConnection(url)) {
            DatabaseMetaData meta = conn.getMetaData();
            check(meta.getDatabaseProductName().equals("PostgreSQL"), "product " + meta.getDatabaseProductName());

            try (Statement st = conn.createStatement()) {
                st.execute("CREATE TABLE " + table + " (id BIGINT, name TEXT, score DOUBLE PRECISION)");
            }

            // Prepared statements, run often enough to become server-side ones.
            try (PreparedStatement insert = conn.prepareStatement("INSERT INTO " + table + " VALUES (?, ?, ?)")) {
                for (int i = 0; i < 8; i++) {
                    insert.setLong(1, i);
                    insert.setString(2, "n" + i);
                    insert.setDouble(3, i / 2.0);
                    check(insert.executeUpdate() == 1, "one row inserted");
                }
                // A batch reports one count per statement.
                for (int i = 8; i < 11; i++) {
                    insert.setLong(1, i);
                    insert.setString(2, "n" + i);
                    insert.setDouble(3, i / 2.0);
                    insert.addBatch();
                }
                int[] counts = insert.executeBatch();
                check(Arrays.equals(counts, new int[] {1, 1, 1}), "batch counts " + Arrays.toString(counts));
            }
            try (PreparedStatement select = conn.prepareStatement("SELECT name, score FROM " + table + " WHERE id = ?")) {
                for (long id : new long[] {1, 2, 9}) {
                    select.setLong(1, id);
                    try (ResultSet rs = select.executeQuery()) {
                        check(rs.next(), "a row for " + id);
                        check(rs.getString(1).equals("n" + id), "name of " + id);
                        check(rs.getDouble(2) == id / 2.0, "score of " + id);
                        check(!rs.next(), "one row for " + id);
                    }
                }
            }

            // setFetchSize reads through a portal a few rows at a time (pgjdbc
            // uses portals only inside a transaction).
            conn.setAutoCommit(false);
            try (PreparedStatement all = conn.prepareStatement("SELECT id FROM " + table + " ORDER BY id")) {
                all.setFetchSize(3);
                List<Long> ids = new ArrayList<>();
                try (ResultSet rs = all.executeQuery()) {
                    while (rs.next()) {
                        ids.add(rs.getLong(1));
                    }
                }
                check(ids.size() == 11 && ids.get(0) == 0 && ids.get(10) == 10, "fetched " + ids);
            }
            conn.rollback();
            conn.setAutoCommit(true);

            // Errors carry their SQLSTATE.
            try (Statement st = conn.createStatement()) {
                st.executeQuery("SELECT * FROM no_such_table");
                check(false, "no error");
            } catch (SQLException e) {
                check("42P01".equals(e.getSQLState()), "SQLSTATE " + e.getSQLState());
            }

            // DatabaseMetaData: tables and columns.
            boolean found = false;
            try (ResultSet rs = meta.getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (rs.next()) {
                    found |= rs.getString("TABLE_NAME").equals(table);
                }
            }
            check(found, "getTables lists " + table);
            List<String> columns = new ArrayList<>();
            try (ResultSet rs = meta.getColumns(null, "public", table, "%")) {
                while (rs.next()) {
                    columns.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
                }
            }
            check(columns.equals(List.of("id:int8", "name:text", "score:float8")), "getColumns " + columns);

            try (Statement st = conn.createStatement()) {
                st.execute("DROP TABLE " + table);
            }
            schemaSync(conn, meta, table + "_keyed");
        }
        System.out.println("pgjdbc: all checks passed");
    }
}
