// Types KEYS keys into each given session's terminal at once; each key is sent when the
// previous one's echo came back. Prints {"keys":[latencies in ms]} on stdout.
// Usage: node typists.mjs BASE KEYS GAP_MS SESSION...
import { Term, openAll, typeKeys } from './terminal.mjs';

const [base, keys, gap, ...ids] = [process.argv[2], +process.argv[3], +process.argv[4], ...process.argv.slice(5)];
const terms = ids.map((id) => new Term(base, id));
await openAll(terms);
const lat = [];
await Promise.all(terms.map((t, n) => typeKeys(t, n, keys, gap, lat)));
for (const t of terms) t.ws.close();
console.log(JSON.stringify({ keys: lat }));
