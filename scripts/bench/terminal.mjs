// A lab session's terminal as the playground drives it (the WebSocket protocol of
// /api/sessions/{id}/terminal), for the benchmarks' clients. Node 22+ (or 20.10+ with
// --experimental-websocket) has WebSocket built in.
export const plain = (s) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
export const PROMPT = /\$ $/;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const now = () => performance.now();
const dec = new TextDecoder();
const enc = new TextEncoder();

export class Term {
    constructor(base, id) { this.wsBase = base.replace(/^http/, 'ws'); this.id = id; this.text = ''; this.waiters = []; this.mark = 0; }
    open() {
        return new Promise((resolve, reject) => {
            const ws = new WebSocket(`${this.wsBase}/api/sessions/${this.id}/terminal`);
            ws.binaryType = 'arraybuffer';
            ws.onopen = () => { ws.send(JSON.stringify({ type: 'resize', cols: 120, rows: 30 })); resolve(); };
            ws.onerror = (e) => reject(new Error(`terminal ${this.id}: ${e.message || 'websocket error'}`));
            ws.onmessage = (ev) => {
                const t = now();
                const chunk = dec.decode(new Uint8Array(ev.data));
                this.text += chunk;
                if (chunk.includes('\x1b[6n')) {
                    const line = this.text.split('\x1b[6n').slice(0, -1).join('').split(/[\r\n]/).pop();
                    this.send(`\x1b[1;${plain(line).length + 1}R`);
                }
                if (this.text.length > 1 << 16) { const cut = this.text.length - (1 << 15); this.text = this.text.slice(cut); this.mark = Math.max(0, this.mark - cut); }
                this.waiters = this.waiters.filter((w) => !w(t));
            };
            this.ws = ws;
        });
    }
    send(s) { this.ws.send(enc.encode(s)); }
    until(test, what, ms = 30000) {
        const mark = this.mark;
        return new Promise((resolve, reject) => {
            const check = (t) => {
                if (!test(plain(this.text.slice(mark)))) return false;
                this.mark = this.text.length;
                clearTimeout(timer);
                resolve(t);
                return true;
            };
            const timer = setTimeout(() => {
                this.waiters = this.waiters.filter((w) => w !== check);
                reject(new Error(`session ${this.id}: no ${what} within ${ms} ms; it shows ${JSON.stringify(this.text.slice(-200))}`));
            }, ms);
            if (!check(now())) this.waiters.push(check);
        });
    }
}

/// Opens the terminals and waits for a fresh prompt in each.
export async function openAll(terms) {
    await Promise.all(terms.map(async (t) => { await t.open(); await sleep(300); t.send('\x03'); await t.until((s) => PROMPT.test(s), 'prompt'); }));
}

/// The nth terminal types `keys` keys, each sent when the previous one's echo came back,
/// about `gap` ms apart, then clears the line; the echo latencies (ms) go into `lat`.
export async function typeKeys(t, n, keys, gap, lat) {
    const letters = 'abcdefghijklmnopqrstuvwxyz';
    await sleep(200 + Math.random() * 50);
    for (let k = 0; k < keys; k++) {
        const c = letters[(k + n) % letters.length];
        t.mark = t.text.length;
        const sent = now();
        t.send(c);
        lat.push((await t.until((s) => s.includes(c), `echo of key ${k}`, 15000)) - sent);
        if (gap > 0) await sleep(gap * (0.5 + Math.random()));
    }
    t.send('\x03');
    await t.until((s) => PROMPT.test(s), 'prompt after ctrl-C');
}
