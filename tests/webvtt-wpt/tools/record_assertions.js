// Turns the JavaScript assertions of a WPT webvtt file-parsing test into
// data: runs them against stand-in objects that record what is asserted
// instead of checking it.
//
// stdin: JSON list of {name, js, cues}; `cues` is the count the test asserts
// first (assert_equals(cues.length, N); null when it asserts none), so loops
// over cues.length and Array.from(cues) run as in a browser. stdout: JSON list of
// {name, checks, not_checked} (format in ../SOURCES.md).
//
// Every value read from a cue is a recorder; asserting on it records the
// expectation. Using a recorded value in arithmetic, string building or a
// condition throws, so a test this cannot express fails loudly here instead
// of yielding a wrong expectation.
'use strict';

const PATH = Symbol('path');

function recorder(path) {
    return new Proxy(function () {}, {
        get(_target, prop) {
            if (prop === PATH) return path;
            if (typeof prop === 'symbol' || prop === 'valueOf' || prop === 'toString' || prop === 'toJSON') {
                throw new Error('the test computes with ' + path.join('.') + '; only direct assertions can be recorded');
            }
            return recorder(path.concat([prop]));
        },
        has() {
            throw new Error('the test inspects ' + path.join('.') + ' with `in`');
        },
    });
}

const isRec = (v) => typeof v === 'function' && v[PATH] !== undefined;

// A recorded path: ["3", "region", "lines"] -> {cue: 3, path: ["region", "lines"]}.
function where(v) {
    const p = v[PATH];
    if (p[0] === 'document') return { outside: p.join('.') };
    if (!/^\d+$/.test(p[0])) throw new Error('unexpected path ' + p.join('.'));
    return { cue: Number(p[0]), path: p.slice(1) };
}

function constant(v) {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
    if (typeof v === 'number') {
        if (!Number.isFinite(v)) throw new Error('non-finite expectation ' + v);
        return Object.is(v, -0) ? 0 : v;
    }
    throw new Error('expectation of unsupported type: ' + typeof v);
}

function sameValue(a, b) {
    return a === b ? (a !== 0 || 1 / a === 1 / b) : (a !== a && b !== b);
}

function run(test) {
    const checks = [];
    const notChecked = [];
    const add = (actual, rel, expected) => {
        const w = where(actual);
        const item = {};
        if (isRec(expected)) {
            const e = where(expected);
            if (w.outside || e.outside) throw new Error('comparison outside the cue list');
            item[rel === 'equals' ? 'same_as' : 'not_same_as'] = e;
        } else {
            item[rel] = constant(expected);
        }
        if (w.outside) notChecked.push(Object.assign({ what: w.outside }, item));
        else checks.push(Object.assign(w, item));
    };
    const n = test.cues === null ? 0 : test.cues;
    const cues = { length: n };
    for (let i = 0; i < n; i++) cues[i] = recorder([String(i)]);
    const h = {
        assert_equals(a, b) {
            if (isRec(a)) add(a, 'equals', b);
            else if (isRec(b)) add(b, 'equals', a);
            else if (!sameValue(a, b)) throw new Error('constant assertion fails: ' + a + ' vs ' + b);
        },
        assert_not_equals(a, b) {
            if (isRec(a)) add(a, 'not_equals', b);
            else if (isRec(b)) add(b, 'not_equals', a);
            else if (sameValue(a, b)) throw new Error('constant assertion fails: ' + a + ' == ' + b);
        },
        assert_true(v) {
            if (isRec(v)) add(v, 'equals', true);
            else if (v !== true) throw new Error('constant assert_true fails');
        },
        assert_false(v) {
            if (isRec(v)) add(v, 'equals', false);
            else if (v !== false) throw new Error('constant assert_false fails');
        },
        assert_unreached(msg) {
            throw new Error('assert_unreached: ' + msg);
        },
    };
    const f = new Function('cues', 'document', ...Object.keys(h), '"use strict";\n' + test.js);
    f(cues, recorder(['document']), ...Object.values(h));
    return { name: test.name, checks, not_checked: notChecked };
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => {
    const out = JSON.parse(input).map((t) => {
        try {
            return run(t);
        } catch (e) {
            throw new Error(t.name + ': ' + e.message);
        }
    });
    process.stdout.write(JSON.stringify(out));
});
