# Sourced by the benchmark scripts: drain_pools AK removes every warm
# pool's sandboxes through the daemon (pooled sandboxes, like all
# sandboxes, outlive the daemon; a script that deletes its home after
# stopping the daemon must drain them first).
drain_pools() {
  "$1" pool list --json 2>/dev/null |
    jq -r '.[] | "--backend \(.backend) --image \(.image) --profile \(.profile) --memory-mb \(.memory_mb) --vcpus \(.vcpus)"' |
    while read -r args; do
      # shellcheck disable=SC2086 # args are flags
      "$1" pool drain $args >/dev/null 2>&1
    done
}
