// Opens a snapshot with better-sqlite3, as a Node or Electron app would, and decodes every
// row of every table into the type `schema/schema.ts` declares for it. The decoders are
// typed `Decoders<Row>`: a field added to, removed from or retyped in schema.ts without a
// matching change here fails to compile; a column of the file that schema.ts does not
// declare, or a value of the wrong shape, fails at run time. Prints each table's count as
// JSON. Usage: node snapshot_rows.js FILE
import Database from "better-sqlite3";
import {
  TASK_STATUSES,
  type Generation,
  type Json,
  type Project,
  type Shot,
  type ShotGeneration,
  type Task,
  type TaskStatus,
  type User,
} from "./schema";

type Decoder<V> = (value: unknown, where: string) => V;
type Decoders<Row> = { [K in keyof Row]-?: Decoder<Row[K]> };

function fail(where: string, value: unknown): never {
  throw new Error(`${where}: unexpected ${JSON.stringify(value)}`);
}
const text: Decoder<string> = (v, w) => (typeof v === "string" ? v : fail(w, v));
const nullable =
  <V>(inner: Decoder<V>): Decoder<V | null> =>
  (v, w) =>
    v === null ? null : inner(v, w);
const uuid: Decoder<string> = (v, w) =>
  typeof v === "string" && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(v)
    ? v
    : fail(w, v);
const timestamp: Decoder<string> = (v, w) =>
  typeof v === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(v) ? v : fail(w, v);
const integer: Decoder<number> = (v, w) =>
  typeof v === "number" && Number.isInteger(v) ? v : fail(w, v);
// SQLite keeps booleans as 0 and 1.
const bool: Decoder<boolean> = (v, w) => (v === 0 ? false : v === 1 ? true : fail(w, v));
// JSON documents and uuid lists are JSON text in SQLite.
const json: Decoder<Json> = (v, w) => (typeof v === "string" ? (JSON.parse(v) as Json) : fail(w, v));
const uuids: Decoder<string[]> = (v, w) => {
  const list = json(v, w);
  return Array.isArray(list) ? list.map((id, i) => uuid(id, `${w}[${i}]`)) : fail(w, v);
};
const status: Decoder<TaskStatus> = (v, w) =>
  (TASK_STATUSES as readonly unknown[]).includes(v) ? (v as TaskStatus) : fail(w, v);

const sync = {
  deleted: bool,
  sync_version: integer,
  last_modified_at: nullable(timestamp),
  device_id: nullable(text),
};

const users: Decoders<User> = {
  id: uuid,
  email: nullable(text),
  display_name: nullable(text),
  created_at: timestamp,
  row_version: integer,
  ...sync,
};
const projects: Decoders<Project> = {
  id: uuid,
  name: text,
  user_id: uuid,
  created_at: timestamp,
  row_version: integer,
  ...sync,
};
const tasks: Decoders<Task> = {
  id: uuid,
  task_type: text,
  params: json,
  status,
  dependant_on: uuids,
  output_location: nullable(text),
  created_at: timestamp,
  updated_at: timestamp,
  project_id: uuid,
  row_version: integer,
  claimed_by: nullable(text),
  lease_expires_at: nullable(timestamp),
  attempts: integer,
  max_attempts: integer,
  last_error: nullable(text),
  ...sync,
};
const generations: Decoders<Generation> = {
  id: uuid,
  tasks: uuids,
  location: nullable(text),
  type: nullable(text),
  created_at: timestamp,
  updated_at: timestamp,
  project_id: uuid,
  row_version: integer,
  ...sync,
};
const shots: Decoders<Shot> = {
  id: uuid,
  name: text,
  created_at: timestamp,
  updated_at: timestamp,
  project_id: uuid,
  row_version: integer,
  ...sync,
};
const shot_generations: Decoders<ShotGeneration> = {
  id: uuid,
  shot_id: uuid,
  generation_id: uuid,
  position: integer,
  row_version: integer,
  ...sync,
};

function decodeAll<Row>(db: Database.Database, table: string, decoders: Decoders<Row>): Row[] {
  const expected = Object.keys(decoders).sort();
  const columns = (db.prepare(`SELECT name FROM pragma_table_info(?)`).all(table) as { name: string }[])
    .map((c) => c.name)
    .sort();
  if (JSON.stringify(columns) !== JSON.stringify(expected)) {
    throw new Error(`${table}: the file has columns ${columns}, schema.ts declares ${expected}`);
  }
  const rows = db.prepare(`SELECT * FROM "${table}"`).all() as Record<string, unknown>[];
  return rows.map((row, r) => {
    const decoded: Partial<Record<keyof Row, unknown>> = {};
    for (const key of Object.keys(decoders) as (keyof Row)[]) {
      decoded[key] = decoders[key](row[key as string], `${table}[${r}].${String(key)}`);
    }
    return decoded as Row;
  });
}

const file = process.argv[2];
if (!file) {
  throw new Error("usage: node snapshot_rows.js FILE");
}
const db = new Database(file, { readonly: true, fileMustExist: true });
const counts: Record<string, number> = {
  users: decodeAll(db, "users", users).length,
  projects: decodeAll(db, "projects", projects).length,
  tasks: decodeAll(db, "tasks", tasks).length,
  generations: decodeAll(db, "generations", generations).length,
  shots: decodeAll(db, "shots", shots).length,
  shot_generations: decodeAll(db, "shot_generations", shot_generations).length,
};
const meta = Object.fromEntries(
  (db.prepare("SELECT key, value FROM dal_snapshot").all() as { key: string; value: string }[]).map(
    (m) => [m.key, m.value],
  ),
);
db.close();
console.log(JSON.stringify({ counts, schema_version: meta.schema_version }));
