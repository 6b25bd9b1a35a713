// pgjdbc (Debian's libpostgresql-jdbc-java) against a Quiver server
// (QUIVER_HOST, QUIVER_PORT): prepared statements, batches with their update
// counts, setFetchSize portals, DatabaseMetaData. Run as a single-file
// program by tests/e2e/clients.rs; exits non-zero on the first failure.

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
        }
        System.out.println("pgjdbc: all checks passed");
    }
}
