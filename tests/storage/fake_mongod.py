#!/usr/bin/env python3
"""A MongoDB wire-protocol test server (Python 3 standard library only).

Not a database: an in-memory stand-in that speaks enough of MongoDB's wire
protocol for the commands storage/mongo/mongo_store.cpp sends, so that the
storage conformance suite can run where no real mongod can be installed.

  python3 fake_mongod.py [--port N] [--dbpath FILE]

prints the port it listens on (127.0.0.1) as the first line of stdout and
exits when its standard input closes (so it never outlives the test process
that started it). FAKE_MONGOD_LOG=1 logs each command's name on stderr.

With --dbpath the data outlives the process, as a real mongod's does: it is
loaded from FILE at start and written back (atomically) after every command
that changes it, so a test can kill the server and start it again on the
same port (the outage tests of `llm-proxy serve`). Without it, it lives in
memory only.

Wire protocol: OP_MSG (2013) with section kinds 0 and 1 (and the checksum
flag), OP_QUERY (2004) answered with OP_REPLY (1) for the legacy
isMaster/hello handshake. It reports itself as a standalone (no setName): the
client then takes its no-transaction path.

Commands: hello/isMaster, ping, buildInfo, getParameter, endSessions,
killCursors, getMore (cursors honour batchSize), insert, find, update ($set, $inc, $unset, $setOnInsert,
replacement; upsert; multi), delete, findAndModify, count, aggregate ($match,
$group, $sort, $limit, $skip, $project, $count), create, createIndexes (unique
indexes enforced, E11000 errors in the server's shape), listIndexes,
listCollections, drop, dropDatabase ($changeStream is refused, as a
standalone refuses it). Query operators: $eq $ne $gt $gte $lt
$lte $in $nin $exists $and $or $nor. Expressions: field paths, $toDate,
$dateToString, $toString, $cond, $eq $ne $gt $gte $lt $lte, $add, $ifNull.
"""

import datetime
import functools
import os
import pickle
import socket
import socketserver
import struct
import sys
import threading

# FAKE_MONGOD_LOG=1 prints every command's name on stderr.
LOG = os.environ.get("FAKE_MONGOD_LOG") == "1"

OP_REPLY = 1
OP_QUERY = 2004
OP_MSG = 2013

# ---------------------------------------------------------------------------
# BSON


class Int64(int):
    """An integer that encodes as BSON int64 (type 0x12)."""


class ObjectId:
    def __init__(self, raw):
        self.raw = bytes(raw)

    def __eq__(self, other):
        return isinstance(other, ObjectId) and other.raw == self.raw

    def __hash__(self):
        return hash(self.raw)

    def __repr__(self):
        return "ObjectId(%s)" % self.raw.hex()


class Datetime:
    def __init__(self, ms):
        self.ms = int(ms)

    def __eq__(self, other):
        return isinstance(other, Datetime) and other.ms == self.ms

    def __hash__(self):
        return hash(("dt", self.ms))


class Binary:
    def __init__(self, subtype, data):
        self.subtype, self.data = subtype, bytes(data)

    def __eq__(self, other):
        return isinstance(other, Binary) and (other.subtype, other.data) == (self.subtype, self.data)

    def __hash__(self):
        return hash((self.subtype, self.data))


class Timestamp:
    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Timestamp) and other.value == self.value

    def __hash__(self):
        return hash(("ts", self.value))


class Raw:
    """A value of a type this server does not interpret, kept as bytes."""

    def __init__(self, btype, data):
        self.btype, self.data = btype, data

    def __eq__(self, other):
        return isinstance(other, Raw) and (other.btype, other.data) == (self.btype, self.data)

    def __hash__(self):
        return hash((self.btype, self.data))


class _Reader:
    def __init__(self, data, pos=0):
        self.data, self.pos = data, pos

    def take(self, n):
        out = self.data[self.pos:self.pos + n]
        if len(out) != n:
            raise ValueError("truncated BSON")
        self.pos += n
        return out

    def cstring(self):
        end = self.data.index(b"\x00", self.pos)
        out = self.data[self.pos:end].decode("utf-8")
        self.pos = end + 1
        return out


def decode(data, pos=0, as_array=False):
    """Decodes one document at data[pos:]; returns (value, end position)."""
    (length,) = struct.unpack_from("<i", data, pos)
    end = pos + length
    r = _Reader(data, pos + 4)
    out = {}
    while r.pos < end - 1:
        btype = r.take(1)[0]
        key = r.cstring()
        if btype == 0x01:
            val = struct.unpack("<d", r.take(8))[0]
        elif btype == 0x02:
            (n,) = struct.unpack("<i", r.take(4))
            val = r.take(n)[:-1].decode("utf-8")
        elif btype in (0x03, 0x04):
            val, r.pos = decode(data, r.pos, as_array=btype == 0x04)
        elif btype == 0x05:
            (n,) = struct.unpack("<i", r.take(4))
            sub = r.take(1)[0]
            val = Binary(sub, r.take(n))
        elif btype == 0x07:
            val = ObjectId(r.take(12))
        elif btype == 0x08:
            val = r.take(1)[0] != 0
        elif btype == 0x09:
            val = Datetime(struct.unpack("<q", r.take(8))[0])
        elif btype == 0x0A:
            val = None
        elif btype == 0x10:
            val = struct.unpack("<i", r.take(4))[0]
        elif btype == 0x11:
            val = Timestamp(struct.unpack("<Q", r.take(8))[0])
        elif btype == 0x12:
            val = Int64(struct.unpack("<q", r.take(8))[0])
        elif btype == 0x13:
            val = Raw(btype, r.take(16))
        elif btype in (0x7F, 0xFF):
            val = Raw(btype, b"")
        else:
            raise ValueError("unsupported BSON type 0x%02x" % btype)
        out[key] = val
    if as_array:
        return [out[k] for k in out], end
    return out, end


def _cstring(s):
    b = s.encode("utf-8")
    if b"\x00" in b:
        raise ValueError("NUL in key")
    return b + b"\x00"


def _element(key, val):
    k = _cstring(key)
    if val is None:
        return b"\x0a" + k
    if isinstance(val, bool):
        return b"\x08" + k + (b"\x01" if val else b"\x00")
    if isinstance(val, Int64):
        return b"\x12" + k + struct.pack("<q", val)
    if isinstance(val, int):
        if -2**31 <= val < 2**31:
            return b"\x10" + k + struct.pack("<i", val)
        return b"\x12" + k + struct.pack("<q", val)
    if isinstance(val, float):
        return b"\x01" + k + struct.pack("<d", val)
    if isinstance(val, str):
        b = val.encode("utf-8") + b"\x00"
        return b"\x02" + k + struct.pack("<i", len(b)) + b
    if isinstance(val, dict):
        return b"\x03" + k + encode(val)
    if isinstance(val, (list, tuple)):
        return b"\x04" + k + encode({str(i): v for i, v in enumerate(val)})
    if isinstance(val, ObjectId):
        return b"\x07" + k + val.raw
    if isinstance(val, Datetime):
        return b"\x09" + k + struct.pack("<q", val.ms)
    if isinstance(val, Binary):
        return b"\x05" + k + struct.pack("<i", len(val.data)) + bytes([val.subtype]) + val.data
    if isinstance(val, Timestamp):
        return b"\x11" + k + struct.pack("<Q", val.value)
    if isinstance(val, Raw):
        return bytes([val.btype]) + k + val.data
    raise TypeError("cannot encode %r" % (val,))


def encode(doc):
    body = b"".join(_element(k, v) for k, v in doc.items())
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


# ---------------------------------------------------------------------------
# Comparison (BSON order) and queries

MISSING = object()


def _rank(v):
    if v is None or v is MISSING:
        return 1
    if isinstance(v, bool):
        return 8
    if isinstance(v, (int, float)):
        return 2
    if isinstance(v, str):
        return 3
    if isinstance(v, dict):
        return 4
    if isinstance(v, list):
        return 5
    if isinstance(v, Binary):
        return 6
    if isinstance(v, ObjectId):
        return 7
    if isinstance(v, Datetime):
        return 9
    if isinstance(v, Timestamp):
        return 10
    return 11


def compare(a, b):
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 1:
        return 0
    if ra == 2:
        return (a > b) - (a < b)
    if ra == 3:
        ea, eb = a.encode("utf-8"), b.encode("utf-8")
        return (ea > eb) - (ea < eb)
    if ra == 4:
        for (ka, va), (kb, vb) in zip(a.items(), b.items()):
            c = compare(va, vb) or ((ka > kb) - (ka < kb))
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    if ra == 5:
        for va, vb in zip(a, b):
            c = compare(va, vb)
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    if ra == 7:
        return (a.raw > b.raw) - (a.raw < b.raw)
    if ra == 8:
        return (a > b) - (a < b)
    if ra == 9:
        return (a.ms > b.ms) - (a.ms < b.ms)
    if ra == 10:
        return (a.value > b.value) - (a.value < b.value)
    return 0


def get_path(doc, path):
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return MISSING
    return cur


class CommandError(Exception):
    def __init__(self, code, code_name, msg):
        super().__init__(msg)
        self.code, self.code_name, self.msg = code, code_name, msg


def _values(v):
    """A field's value and, for an array, its elements (as queries see them)."""
    if isinstance(v, list):
        return [v] + v
    return [v]


def _eq(v, want):
    if want is None:
        return v is MISSING or any(x is None for x in _values(v))
    return any(x is not MISSING and compare(x, want) == 0 for x in _values(v))


def _cmp_op(v, want, ok):
    return any(x is not MISSING and _rank(x) == _rank(want) and ok(compare(x, want))
               for x in _values(v))


def match_value(v, cond):
    if isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond):
        for op, arg in cond.items():
            if op == "$eq":
                ok = _eq(v, arg)
            elif op == "$ne":
                ok = not _eq(v, arg)
            elif op == "$gt":
                ok = _cmp_op(v, arg, lambda c: c > 0)
            elif op == "$gte":
                ok = _cmp_op(v, arg, lambda c: c >= 0)
            elif op == "$lt":
                ok = _cmp_op(v, arg, lambda c: c < 0)
            elif op == "$lte":
                ok = _cmp_op(v, arg, lambda c: c <= 0)
            elif op == "$in":
                ok = any(_eq(v, a) for a in arg)
            elif op == "$nin":
                ok = not any(_eq(v, a) for a in arg)
            elif op == "$exists":
                ok = (v is not MISSING) == bool(arg)
            elif op == "$not":
                ok = not match_value(v, arg)
            else:
                raise CommandError(2, "BadValue", "unknown operator: %s" % op)
            if not ok:
                return False
        return True
    return _eq(v, cond)


def matches(doc, flt):
    for key, cond in (flt or {}).items():
        if key == "$and":
            if not all(matches(doc, f) for f in cond):
                return False
        elif key == "$or":
            if not any(matches(doc, f) for f in cond):
                return False
        elif key == "$nor":
            if any(matches(doc, f) for f in cond):
                return False
        elif key.startswith("$"):
            raise CommandError(2, "BadValue", "unknown top level operator: %s" % key)
        elif not match_value(get_path(doc, key), cond):
            return False
    return True


def sort_docs(docs, spec):
    if not spec:
        return list(docs)

    def cmp(a, b):
        for key, direction in spec.items():
            c = compare(_sort_value(get_path(a, key)), _sort_value(get_path(b, key)))
            if c:
                return c if direction >= 0 else -c
        return 0

    return sorted(docs, key=functools.cmp_to_key(cmp))


def _sort_value(v):
    return None if v is MISSING else v


def project(doc, spec):
    if not spec:
        return doc
    include = [k for k, v in spec.items() if v and k != "_id"]
    if include:
        out = {}
        if spec.get("_id", 1) and "_id" in doc:
            out["_id"] = doc["_id"]
        for k in include:
            v = get_path(doc, k)
            if v is not MISSING:
                out[k] = v
        return out
    return {k: v for k, v in doc.items() if spec.get(k, 1)}


# ---------------------------------------------------------------------------
# Aggregation expressions


def _to_ms(v):
    if isinstance(v, Datetime):
        return v.ms
    raise CommandError(16006, "Location16006", "can't convert from BSON type to Date")


def evaluate(expr, doc):
    if isinstance(expr, str):
        if expr.startswith("$$"):
            if expr == "$$ROOT":
                return doc
            raise CommandError(17276, "Location17276", "Use of undefined variable: " + expr)
        if expr.startswith("$"):
            v = get_path(doc, expr[1:])
            return None if v is MISSING else v
        return expr
    if isinstance(expr, list):
        return [evaluate(e, doc) for e in expr]
    if isinstance(expr, dict):
        if len(expr) == 1 and next(iter(expr)).startswith("$"):
            op, arg = next(iter(expr.items()))
            return _operator(op, arg, doc)
        return {k: evaluate(v, doc) for k, v in expr.items()}
    return expr


def _args(arg, doc):
    return [evaluate(a, doc) for a in (arg if isinstance(arg, list) else [arg])]


def _operator(op, arg, doc):
    if op == "$literal":
        return arg
    if op in ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte"):
        a, b = _args(arg, doc)
        c = compare(a, b)
        return {"$eq": c == 0, "$ne": c != 0, "$gt": c > 0, "$gte": c >= 0, "$lt": c < 0,
                "$lte": c <= 0}[op]
    if op == "$cond":
        if isinstance(arg, dict):
            cond, then, other = arg["if"], arg["then"], arg["else"]
        else:
            cond, then, other = arg
        c = evaluate(cond, doc)
        truthy = c not in (None, False, 0) and c is not MISSING
        return evaluate(then if truthy else other, doc)
    if op == "$ifNull":
        vals = _args(arg, doc)
        for v in vals[:-1]:
            if v is not None:
                return v
        return vals[-1]
    if op == "$add":
        vals = _args(arg, doc)
        if any(v is None for v in vals):
            return None
        dates = [v for v in vals if isinstance(v, Datetime)]
        total = sum(v.ms if isinstance(v, Datetime) else v for v in vals)
        return Datetime(total) if dates else total
    if op == "$toDate":
        (v,) = _args(arg, doc)
        if v is None:
            return None
        if isinstance(v, Datetime):
            return v
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return Datetime(int(v))
        raise CommandError(241, "ConversionFailure", "Unsupported conversion to date")
    if op == "$toString":
        (v,) = _args(arg, doc)
        if v is None:
            return None
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(int(v))
        if isinstance(v, float):
            return repr(v)
        if isinstance(v, str):
            return v
        if isinstance(v, ObjectId):
            return v.raw.hex()
        if isinstance(v, Datetime):
            return _format_date(v.ms, "%Y-%m-%dT%H:%M:%S.%LZ")
        raise CommandError(241, "ConversionFailure", "Unsupported conversion to string")
    if op == "$dateToString":
        date = evaluate(arg["date"], doc)
        if date is None:
            return evaluate(arg.get("onNull"), doc) if "onNull" in arg else None
        tz = evaluate(arg.get("timezone", "UTC"), doc)
        if tz not in ("UTC", "Z", "+00:00", "GMT", "Etc/UTC"):
            raise CommandError(40485, "Location40485", "unsupported timezone in the test server")
        return _format_date(_to_ms(date), arg.get("format", "%Y-%m-%dT%H:%M:%S.%LZ"))
    raise CommandError(168, "InvalidPipelineOperator", "Unrecognized expression '%s'" % op)


def _format_date(ms, fmt):
    t = datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=ms)
    out, i = [], 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%" and i + 1 < len(fmt):
            code = fmt[i + 1]
            i += 2
            out.append({"Y": "%04d" % t.year, "m": "%02d" % t.month, "d": "%02d" % t.day,
                        "H": "%02d" % t.hour, "M": "%02d" % t.minute, "S": "%02d" % t.second,
                        "L": "%03d" % (t.microsecond // 1000), "j": "%03d" % t.timetuple().tm_yday,
                        "%": "%"}.get(code, "%" + code))
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class _Acc:
    def __init__(self, op, expr):
        self.op, self.expr = op, expr
        self.total, self.count, self.value, self.seen = 0, 0, None, False

    def add(self, doc):
        v = evaluate(self.expr, doc)
        if self.op == "$sum":
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.total += v
        elif self.op == "$avg":
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.total += v
                self.count += 1
        elif self.op == "$count":
            self.total += 1
        elif self.op in ("$min", "$max"):
            if v is not None:
                if not self.seen or (compare(v, self.value) < 0) == (self.op == "$min"):
                    self.value, self.seen = v, True
        elif self.op == "$first":
            if not self.seen:
                self.value, self.seen = v, True
        elif self.op == "$last":
            self.value = v
        elif self.op == "$push":
            if self.value is None:
                self.value = []
            self.value.append(v)
        else:
            raise CommandError(15952, "Location15952", "unknown group operator '%s'" % self.op)

    def result(self):
        if self.op in ("$sum", "$count"):
            return self.total
        if self.op == "$avg":
            return self.total / self.count if self.count else None
        return self.value


def _group(docs, spec):
    groups = {}
    order = []
    for doc in docs:
        key = evaluate(spec["_id"], doc)
        hkey = encode({"k": key})
        if hkey not in groups:
            groups[hkey] = (key, [_Acc(*next(iter(a.items()))) for f, a in spec.items()
                                  if f != "_id"])
            order.append(hkey)
        for acc in groups[hkey][1]:
            acc.add(doc)
    fields = [f for f in spec if f != "_id"]
    out = []
    for hkey in order:
        key, accs = groups[hkey]
        row = {"_id": key}
        for f, acc in zip(fields, accs):
            row[f] = acc.result()
        out.append(row)
    return out


def run_pipeline(docs, pipeline):
    for stage in pipeline:
        name, spec = next(iter(stage.items()))
        if name == "$match":
            docs = [d for d in docs if matches(d, spec)]
        elif name == "$group":
            docs = _group(docs, spec)
        elif name == "$sort":
            docs = sort_docs(docs, spec)
        elif name == "$limit":
            docs = docs[:int(spec)]
        elif name == "$skip":
            docs = docs[int(spec):]
        elif name == "$count":
            docs = [{spec: len(docs)}] if docs else []
        elif name == "$changeStream":  # as a standalone mongod answers
            raise CommandError(40573, "Location40573",
                               "The $changeStream stage is only supported on replica sets")
        elif name == "$project":
            computed = any(not isinstance(v, (int, bool)) for v in spec.values())
            if computed:
                docs = [dict({"_id": d.get("_id")} if spec.get("_id", 1) else {},
                             **{k: evaluate(v if not isinstance(v, (int, bool)) else "$" + k, d)
                                for k, v in spec.items() if k != "_id"}) for d in docs]
            else:
                docs = [project(d, spec) for d in docs]
        else:
            raise CommandError(40324, "Location40324",
                               "Unrecognized pipeline stage name: '%s'" % name)
    return docs


# ---------------------------------------------------------------------------
# Storage


class Collection:
    def __init__(self, db, name):
        self.db, self.name = db, name
        self.docs = []
        self.indexes = [{"v": 2, "key": {"_id": 1}, "name": "_id_"}]

    def ns(self):
        return "%s.%s" % (self.db, self.name)

    def _unique_indexes(self):
        return [ix for ix in self.indexes if ix.get("unique") or ix["name"] == "_id_"]

    def check_unique(self, doc, ignore=None):
        for ix in self._unique_indexes():
            key = {k: _sort_value(get_path(doc, k)) for k in ix["key"]}
            for other in self.docs:
                if other is ignore:
                    continue
                if all(compare(_sort_value(get_path(other, k)), v) == 0 for k, v in key.items()):
                    shown = ", ".join("%s: %s" % (k, _show(v)) for k, v in key.items())
                    raise WriteError(11000, "DuplicateKey",
                                     "E11000 duplicate key error collection: %s index: %s "
                                     "dup key: { %s }" % (self.ns(), ix["name"], shown),
                                     {"keyPattern": dict(ix["key"]), "keyValue": key})


def _show(v):
    if isinstance(v, str):
        return '"%s"' % v
    if v is None:
        return "null"
    return str(v)


class WriteError(Exception):
    def __init__(self, code, code_name, msg, extra=None):
        super().__init__(msg)
        self.code, self.code_name, self.msg, self.extra = code, code_name, msg, extra or {}


class Server:
    # The commands after which --dbpath's file is written.
    WRITES = {"insert", "update", "delete", "findandmodify", "create", "createindexes", "drop",
              "dropdatabase"}

    def __init__(self, dbpath=None):
        self.lock = threading.Lock()
        self.dbs = {}
        self.connections = 0
        self.cursors = {}  # id -> (ns, documents not yet returned)
        self.next_cursor = 1000
        self.dbpath = dbpath
        if dbpath and os.path.exists(dbpath):
            with open(dbpath, "rb") as f:
                self.dbs = pickle.load(f)

    def _persist(self):
        tmp = self.dbpath + ".tmp"
        with open(tmp, "wb") as f:
            pickle.dump(self.dbs, f)
        os.replace(tmp, self.dbpath)

    def coll(self, db, name, create=True):
        colls = self.dbs.setdefault(db, {}) if create else self.dbs.get(db, {})
        if name not in colls:
            if not create:
                return None
            colls[name] = Collection(db, name)
        return colls[name]

    # -- commands ------------------------------------------------------------

    def handle(self, cmd, conn_id):
        if not cmd:
            raise CommandError(59, "CommandNotFound", "empty command")
        name = next(iter(cmd))
        db = cmd.get("$db", "admin")
        fn = getattr(self, "cmd_" + name.lower(), None)
        if fn is None:
            raise CommandError(59, "CommandNotFound", "no such command: '%s'" % name)
        with self.lock:
            try:
                return fn(cmd, db, conn_id)
            finally:  # failed writes too: an ordered batch may have written a prefix
                if self.dbpath and name.lower() in self.WRITES:
                    self._persist()

    def cmd_hello(self, cmd, db, conn_id):
        now = Datetime(int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000))
        return {"helloOk": True, "ismaster": True, "isWritablePrimary": True,
                "topologyVersion": {"processId": ObjectId(b"fakemongod01"), "counter": Int64(0)},
                "maxBsonObjectSize": 16 * 1024 * 1024, "maxMessageSizeBytes": 48000000,
                "maxWriteBatchSize": 100000, "localTime": now,
                "logicalSessionTimeoutMinutes": 30, "connectionId": conn_id,
                "minWireVersion": 0, "maxWireVersion": 13, "readOnly": False,
                "fakeServer": "llm-proxy wire-protocol test server (standalone)"}

    cmd_ismaster = cmd_hello

    def cmd_ping(self, cmd, db, conn_id):
        return {}

    def cmd_buildinfo(self, cmd, db, conn_id):
        return {"version": "5.0.0-llmproxy-test-server", "versionArray": [5, 0, 0, 0],
                "gitVersion": "none", "bits": 64, "maxBsonObjectSize": 16 * 1024 * 1024}

    def cmd_getparameter(self, cmd, db, conn_id):
        return {}

    def cmd_endsessions(self, cmd, db, conn_id):
        return {}

    def _cursor(self, ns, docs, batch_size):
        """A cursor reply: everything at once unless batchSize asks for less."""
        if batch_size and len(docs) > batch_size:
            self.next_cursor += 1
            self.cursors[self.next_cursor] = (ns, docs[batch_size:])
            return {"cursor": {"id": Int64(self.next_cursor), "ns": ns,
                               "firstBatch": docs[:batch_size]}}
        return {"cursor": {"id": Int64(0), "ns": ns, "firstBatch": docs}}

    def cmd_killcursors(self, cmd, db, conn_id):
        ids = cmd.get("cursors", [])
        killed = [i for i in ids if self.cursors.pop(int(i), None) is not None]
        return {"cursorsKilled": killed, "cursorsNotFound": [i for i in ids if i not in killed],
                "cursorsAlive": [], "cursorsUnknown": []}

    def cmd_getmore(self, cmd, db, conn_id):
        cid = int(cmd["getMore"])
        if cid not in self.cursors:
            raise CommandError(43, "CursorNotFound", "cursor id %d not found" % cid)
        ns, rest = self.cursors.pop(cid)
        size = int(cmd.get("batchSize", 0) or 0) or len(rest)
        batch, rest = rest[:size], rest[size:]
        if rest:
            self.cursors[cid] = (ns, rest)
        return {"cursor": {"id": Int64(cid if rest else 0), "ns": ns, "nextBatch": batch}}

    def cmd_create(self, cmd, db, conn_id):
        name = cmd["create"]
        if name in self.dbs.get(db, {}):
            raise CommandError(48, "NamespaceExists",
                               "Collection %s.%s already exists." % (db, name))
        self.coll(db, name)
        return {}

    def cmd_drop(self, cmd, db, conn_id):
        name = cmd["drop"]
        if name not in self.dbs.get(db, {}):
            raise CommandError(26, "NamespaceNotFound", "ns not found")
        c = self.dbs[db].pop(name)
        return {"nIndexesWas": len(c.indexes), "ns": c.ns()}

    def cmd_dropdatabase(self, cmd, db, conn_id):
        self.dbs.pop(db, None)
        return {"dropped": db}

    def cmd_listcollections(self, cmd, db, conn_id):
        batch = [{"name": n, "type": "collection", "options": {}, "info": {"readOnly": False}}
                 for n in self.dbs.get(db, {})]
        batch = [b for b in batch if matches(b, cmd.get("filter"))]
        return {"cursor": {"id": Int64(0), "ns": db + ".$cmd.listCollections",
                           "firstBatch": batch}}

    def cmd_createindexes(self, cmd, db, conn_id):
        existed = cmd["createIndexes"] in self.dbs.get(db, {})
        c = self.coll(db, cmd["createIndexes"])
        before = len(c.indexes)
        for spec in cmd["indexes"]:
            same = [ix for ix in c.indexes if ix["name"] == spec["name"]]
            if same:
                ix = same[0]
                if (list(ix["key"].items()) != list(spec["key"].items())
                        or bool(ix.get("unique")) != bool(spec.get("unique"))):
                    raise CommandError(86, "IndexKeySpecsConflict",
                                       "An existing index has the same name as the requested "
                                       "index but different options: %s" % spec["name"])
                continue
            ix = {"v": 2, "key": dict(spec["key"]), "name": spec["name"]}
            if spec.get("unique"):
                ix["unique"] = True
                seen = {}
                for d in c.docs:
                    k = encode({"k": [_sort_value(get_path(d, f)) for f in ix["key"]]})
                    if k in seen:
                        raise CommandError(11000, "DuplicateKey",
                                           "E11000 duplicate key error collection: %s index: %s"
                                           % (c.ns(), ix["name"]))
                    seen[k] = True
            c.indexes.append(ix)
        reply = {"numIndexesBefore": before, "numIndexesAfter": len(c.indexes),
                 "createdCollectionAutomatically": not existed}
        if len(c.indexes) == before:
            reply["note"] = "all indexes already exist"
        return reply

    def cmd_listindexes(self, cmd, db, conn_id):
        c = self.coll(db, cmd["listIndexes"], create=False)
        if c is None:
            raise CommandError(26, "NamespaceNotFound", "ns does not exist: %s.%s"
                               % (db, cmd["listIndexes"]))
        return {"cursor": {"id": Int64(0), "ns": c.ns(), "firstBatch": list(c.indexes)}}

    def cmd_insert(self, cmd, db, conn_id):
        c = self.coll(db, cmd["insert"])
        ordered = cmd.get("ordered", True)
        n, errors = 0, []
        for i, doc in enumerate(cmd.get("documents", [])):
            if "_id" not in doc:
                doc = dict({"_id": ObjectId(os.urandom(12))}, **doc)
            try:
                c.check_unique(doc)
            except WriteError as e:
                errors.append(dict({"index": i, "code": e.code, "errmsg": e.msg}, **e.extra))
                if ordered:
                    break
                continue
            c.docs.append(doc)
            n += 1
        reply = {"n": n}
        if errors:
            reply["writeErrors"] = errors
        return reply

    def cmd_find(self, cmd, db, conn_id):
        c = self.coll(db, cmd["find"], create=False)
        docs = [d for d in (c.docs if c else []) if matches(d, cmd.get("filter"))]
        docs = sort_docs(docs, cmd.get("sort"))
        skip = int(cmd.get("skip", 0) or 0)
        limit = abs(int(cmd.get("limit", 0) or 0))
        docs = docs[skip:]
        if limit:
            docs = docs[:limit]
        docs = [project(d, cmd.get("projection")) for d in docs]
        return self._cursor("%s.%s" % (db, cmd["find"]), docs,
                            int(cmd.get("batchSize", 0) or 0))

    def cmd_count(self, cmd, db, conn_id):
        c = self.coll(db, cmd["count"], create=False)
        n = sum(1 for d in (c.docs if c else []) if matches(d, cmd.get("query")))
        return {"n": n}

    def cmd_aggregate(self, cmd, db, conn_id):
        c = self.coll(db, cmd["aggregate"], create=False)
        docs = run_pipeline(list(c.docs) if c else [], cmd.get("pipeline", []))
        return self._cursor("%s.%s" % (db, cmd["aggregate"]), docs,
                            int((cmd.get("cursor") or {}).get("batchSize", 0) or 0))

    def _apply_update(self, doc, update, inserting):
        if not any(k.startswith("$") for k in update):  # a replacement
            out = dict(update)
            if "_id" in doc:
                out = dict({"_id": doc["_id"]}, **{k: v for k, v in out.items() if k != "_id"})
            return out
        out = dict(doc)
        for op, fields in update.items():
            for k, v in fields.items():
                if "." in k:
                    raise CommandError(2, "BadValue", "dotted paths are not supported here")
                if op == "$set":
                    out[k] = v
                elif op == "$setOnInsert":
                    if inserting:
                        out[k] = v
                elif op == "$unset":
                    out.pop(k, None)
                elif op == "$inc":
                    cur = out.get(k, 0)
                    if not isinstance(cur, (int, float)) or isinstance(cur, bool):
                        raise WriteError(14, "TypeMismatch",
                                         "Cannot apply $inc to a value of non-numeric type")
                    total = cur + v
                    out[k] = Int64(total) if isinstance(total, int) and (
                        isinstance(cur, Int64) or isinstance(v, Int64)) else total
                else:
                    raise CommandError(9, "FailedToParse", "Unknown modifier: %s" % op)
        return out

    def _upsert_seed(self, q):
        seed = {}
        for k, v in (q or {}).items():
            if k.startswith("$"):
                continue
            if isinstance(v, dict) and any(x.startswith("$") for x in v):
                if "$eq" in v:
                    seed[k] = v["$eq"]
                continue
            seed[k] = v
        return seed

    def _update_one_doc(self, c, old, update):
        new = self._apply_update(old, update, inserting=False)
        if "_id" in old and compare(new.get("_id"), old["_id"]) != 0:
            raise WriteError(66, "ImmutableField", "Performing an update on the path '_id' "
                             "would modify the immutable field '_id'")
        c.check_unique(new, ignore=old)
        c.docs[c.docs.index(old)] = new
        return new, new != old

    def _upsert(self, c, q, update):
        seed = self._upsert_seed(q)
        new = self._apply_update(seed, update, inserting=True)
        if "_id" not in new:
            new = dict({"_id": seed.get("_id", ObjectId(os.urandom(12)))}, **new)
        c.check_unique(new)
        c.docs.append(new)
        return new

    def cmd_update(self, cmd, db, conn_id):
        c = self.coll(db, cmd["update"])
        ordered = cmd.get("ordered", True)
        n = modified = 0
        upserted, errors = [], []
        for i, u in enumerate(cmd.get("updates", [])):
            try:
                targets = [d for d in c.docs if matches(d, u.get("q"))]
                if not u.get("multi"):
                    targets = targets[:1]
                if not targets and u.get("upsert"):
                    new = self._upsert(c, u.get("q"), u["u"])
                    n += 1
                    upserted.append({"index": i, "_id": new["_id"]})
                for old in targets:
                    _, changed = self._update_one_doc(c, old, u["u"])
                    n += 1
                    modified += 1 if changed else 0
            except WriteError as e:
                errors.append(dict({"index": i, "code": e.code, "errmsg": e.msg}, **e.extra))
                if ordered:
                    break
        reply = {"n": n, "nModified": modified}
        if upserted:
            reply["upserted"] = upserted
        if errors:
            reply["writeErrors"] = errors
        return reply

    def cmd_delete(self, cmd, db, conn_id):
        c = self.coll(db, cmd["delete"], create=False)
        n = 0
        for d in cmd.get("deletes", []):
            if c is None:
                continue
            targets = [x for x in c.docs if matches(x, d.get("q"))]
            if d.get("limit", 0):
                targets = targets[:1]
            ids = {id(x) for x in targets}
            c.docs = [x for x in c.docs if id(x) not in ids]
            n += len(targets)
        return {"n": n}

    def cmd_findandmodify(self, cmd, db, conn_id):
        c = self.coll(db, cmd["findAndModify"])
        targets = sort_docs([d for d in c.docs if matches(d, cmd.get("query"))], cmd.get("sort"))
        old = targets[0] if targets else None
        fields = cmd.get("fields")
        try:
            if cmd.get("remove"):
                if old is not None:
                    c.docs = [d for d in c.docs if d is not old]
                return {"lastErrorObject": {"n": 1 if old is not None else 0},
                        "value": project(old, fields) if old is not None else None}
            update = cmd.get("update")
            if old is None:
                if not cmd.get("upsert"):
                    return {"lastErrorObject": {"n": 0, "updatedExisting": False}, "value": None}
                new = self._upsert(c, cmd.get("query"), update)
                return {"lastErrorObject": {"n": 1, "updatedExisting": False,
                                            "upserted": new["_id"]},
                        "value": project(new, fields) if cmd.get("new") else None}
            new, _ = self._update_one_doc(c, old, update)
        except WriteError as e:
            raise CommandError(e.code, e.code_name, e.msg)
        return {"lastErrorObject": {"n": 1, "updatedExisting": True},
                "value": project(new if cmd.get("new") else old, fields)}


# ---------------------------------------------------------------------------
# Wire protocol


def _read_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


class Handler(socketserver.BaseRequestHandler):
    next_request_id = 1
    id_lock = threading.Lock()

    def _reply_id(self):
        with Handler.id_lock:
            Handler.next_request_id += 1
            return Handler.next_request_id

    def _run(self, cmd):
        server = self.server.state
        if LOG:
            sys.stderr.write("fake_mongod: %s\n" % (next(iter(cmd), "?"),))
        try:
            reply = server.handle(cmd, self.conn_id)
            reply = dict(reply)
            reply["ok"] = 1.0
        except CommandError as e:
            reply = {"ok": 0.0, "errmsg": e.msg, "code": e.code, "codeName": e.code_name}
        except Exception as e:  # a bug here, reported to the client, not fatal
            reply = {"ok": 0.0, "errmsg": "test server error: %r" % (e,), "code": 1,
                     "codeName": "InternalError"}
        return reply

    def handle(self):
        with self.server.state.lock:
            self.server.state.connections += 1
            self.conn_id = self.server.state.connections
        sock = self.request
        try:
            while True:
                header = _read_exact(sock, 16)
                length, request_id, _, opcode = struct.unpack("<iiii", header)
                body = _read_exact(sock, length - 16)
                if opcode == OP_MSG:
                    flags = struct.unpack_from("<I", body, 0)[0]
                    end = len(body) - (4 if flags & 1 else 0)
                    pos, cmd = 4, None
                    sequences = {}
                    while pos < end:
                        kind = body[pos]
                        pos += 1
                        if kind == 0:
                            cmd, pos = decode(body, pos)
                        elif kind == 1:
                            (size,) = struct.unpack_from("<i", body, pos)
                            sec_end = pos + size
                            r = _Reader(body, pos + 4)
                            ident = r.cstring()
                            docs, p = [], r.pos
                            while p < sec_end:
                                d, p = decode(body, p)
                                docs.append(d)
                            sequences[ident] = docs
                            pos = sec_end
                        else:
                            raise ValueError("unknown OP_MSG section kind %d" % kind)
                    cmd = dict(cmd or {})
                    for ident, docs in sequences.items():
                        cmd[ident] = docs
                    reply = self._run(cmd)
                    if flags & 2:  # moreToCome: no reply wanted
                        continue
                    payload = struct.pack("<I", 0) + b"\x00" + encode(reply)
                    sock.sendall(struct.pack("<iiii", 16 + len(payload), self._reply_id(),
                                             request_id, OP_MSG) + payload)
                elif opcode == OP_QUERY:
                    r = _Reader(body, 4)
                    full_name = r.cstring()
                    pos = r.pos + 8
                    query, _ = decode(body, pos)
                    if "$query" in query:
                        query = query["$query"]
                    if full_name.endswith(".$cmd"):
                        query = dict(query)
                        query.setdefault("$db", full_name[:-5])
                        reply = self._run(query)
                    else:
                        reply = {"$err": "OP_QUERY find is not supported", "code": 5739101}
                    doc = encode(reply)
                    payload = struct.pack("<iqii", 0, 0, 0, 1) + doc
                    sock.sendall(struct.pack("<iiii", 16 + len(payload), self._reply_id(),
                                             request_id, OP_REPLY) + payload)
                else:
                    sys.stderr.write("fake_mongod: unsupported opcode %d, closing\n" % opcode)
                    return
        except (EOFError, ConnectionResetError, BrokenPipeError):
            return


class ThreadingServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    port, dbpath = 0, None
    args = sys.argv[1:]
    while len(args) >= 2 and args[0] in ("--port", "--dbpath"):
        if args[0] == "--port":
            port = int(args[1])
        else:
            dbpath = args[1]
        args = args[2:]
    if args:
        sys.exit("usage: fake_mongod.py [--port N] [--dbpath FILE]")
    srv = ThreadingServer(("127.0.0.1", port), Handler)
    srv.state = Server(dbpath)
    srv.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sys.stdout.write("%d\n" % srv.server_address[1])
    sys.stdout.flush()
    sys.stderr.write("fake_mongod: MongoDB wire-protocol test server (standalone, in memory, "
                     "not a real mongod) on 127.0.0.1:%d\n" % srv.server_address[1])

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
