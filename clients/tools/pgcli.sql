CREATE TABLE tools_pgcli (id SERIAL PRIMARY KEY, name TEXT NOT NULL, added DATE DEFAULT '2024-05-01');
INSERT INTO tools_pgcli (name) VALUES ('ada'), ('grace');
SELECT id, name, added FROM tools_pgcli ORDER BY id;
\dt
\d tools_pgcli
SHOW TIME ZONE;
