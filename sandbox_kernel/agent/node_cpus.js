'use strict';
// The CPU count Node cell code sees: os.cpus() and os.availableParallelism() follow the
// sandbox's CPU limit (the cgroup's quota, read on each call) as Python's os.cpu_count()
// does (agent/cpus.py), so pools sized by them fit the limits. The image preloads it into
// every node process (NODE_OPTIONS=--require); loading it installs it, once.

const fs = require('fs');
const os = require('os');

function read(path) {
  try {
    return fs.readFileSync(path, 'ascii').trim();
  } catch (e) {
    return null;
  }
}

function quota() {
  const v2 = read('/sys/fs/cgroup/cpu.max');
  if (v2 !== null) {
    const [q, period] = v2.split(/\s+/);
    return q !== 'max' && Number(period) > 0 ? Number(q) / Number(period) : null;
  }
  const q = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us'));
  const period = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us'));
  if (q > 0 && period > 0) return q / period;
  const told = Number(process.env.SANDBOX_CPU_LIMIT);
  return told > 0 ? told : null;
}

function install() {
  if (os.cpus.sandboxLimit) return;
  const cpus = os.cpus.bind(os);
  const parallelism = os.availableParallelism ? os.availableParallelism.bind(os) : null;
  const limit = (cores) => {
    const q = quota();
    return q ? Math.max(1, Math.min(cores, Math.ceil(q))) : cores;
  };
  os.cpus = () => {
    const all = cpus();
    return all.slice(0, limit(all.length));
  };
  if (parallelism) os.availableParallelism = () => limit(parallelism());
  os.cpus.sandboxLimit = true;
}

install();
module.exports = { install, quota };
