# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ionctl_global_optspecs
    string join \n etcd= prefix= connect-timeout= etcd-ca= etcd-cert= etcd-key= etcd-user= config= h/help V/version
end

function __fish_ionctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_ionctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_ionctl_using_subcommand
    set -l cmd (__fish_ionctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c ionctl -n "__fish_ionctl_needs_command" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_needs_command" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_needs_command" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_needs_command" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_needs_command" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_needs_command" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_needs_command" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_needs_command" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_needs_command" -s V -l version -d 'Print version'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "nodes" -d 'List the cluster\'s nodes with their state, size and load'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "sessions" -d 'List sessions and the nodes that carry them'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "place" -d 'Place a session: pick a node, reserve it, print the node, signal URL and a join token'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "serve" -d 'Serve placement and cluster reads over HTTP for web front ends'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "bench" -d 'Benchmarks: `bench place` measures placements/s against raw etcd txn/s'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "top" -d 'Live dashboard: nodes, load, sessions, drains and events, updated from etcd watches'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "drain" -d 'Ask nodes to take no new sessions; their sessions continue (writes drain/<node>)'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "undrain" -d 'Return drained nodes to ready (deletes drain/<node>)'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "spawn" -d 'Create an instance (GCE VM or local agent process) that joins the cluster'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "instances" -d 'List the instances created by spawn (or the autoscaler) and their nodes'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "delete" -d 'Drain an instance\'s node, then delete the instance'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "autoscale" -d 'Leader-elected controller: spawns held and shared instances for pending demand, keeps a warm pool, drains and deletes idle nodes'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "loadtest" -d 'Load-test an agent with webrtc-rs participants: loss, latency and the agent\'s CPU per forwarded packet; --calibrate measures units_per_vcpu'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "record" -d 'Record sessions: `record start SID`, `record stop SID`, `record list`'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "token" -d 'Client tokens for the gateway (`serve`\'s /ws): `token issue --session S`'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "completions" -d 'Write shell completion scripts (bash, zsh, fish)'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "simulate" -d 'Replay a day of sessions through our placement and autoscaler and the anchors\' policies (LiveKit, Jitsi, GCE MIG, the seed): cost, waits, overload'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ionctl -n "__fish_ionctl_using_subcommand nodes" -s o -l output -d 'Output format' -r -f -a "table\t'Aligned columns for people'
json\t'Stable JSON on stdout for scripts'"
complete -c ionctl -n "__fish_ionctl_using_subcommand nodes" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand nodes" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand nodes" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand nodes" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand nodes" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand nodes" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand nodes" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand nodes" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand nodes" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand sessions" -l node -d 'Only sessions on this node (as origin or edge)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand sessions" -s o -l output -d 'Output format' -r -f -a "table\t'Aligned columns for people'
json\t'Stable JSON on stdout for scripts'"
complete -c ionctl -n "__fish_ionctl_using_subcommand sessions" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand sessions" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand sessions" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand sessions" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand sessions" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand sessions" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand sessions" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand sessions" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand sessions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand place" -l class -d 'Session class; it sets the size limits, demand and headroom' -r -f -a "group\t'2..6 participants, everyone sees everyone'
meeting\t'2..50 participants, last-N video of 9'
conference\t'2..300 participants, up to 6 speakers'
livestream\t'1 publisher and n viewers, on dedicated nodes'
recording\t'A recorder of n tracks, on a dedicated node'"
complete -c ionctl -n "__fish_ionctl_using_subcommand place" -l size -d 'Participants (viewers for livestream, tracks for recording)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand place" -l session -d 'Session id [default: a new UUID]. Placing an existing session returns its node' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand place" -l strategy -d 'How to pick among the nodes that fit' -r -f -a "binpack\t'Fill used nodes first, the fullest after placement wins, so empty nodes can go'
spread\t'The least utilised node after placement wins'"
complete -c ionctl -n "__fish_ionctl_using_subcommand place" -l role -d 'Who joins: a publisher goes to the session\'s origin, a viewer of a session that spans nodes to its node (origin or edge) with the most room' -r -f -a "publisher\t'Publishes: joins the session\'s origin node'
viewer\t'Only watches: joins the edge of a spanning session with the most room'"
complete -c ionctl -n "__fish_ionctl_using_subcommand place" -l uid -d 'The participant: viewers of a session that spans nodes are spread over its nodes by it, in proportion to their room [default: the node with the most room]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand place" -l wait -d 'When no node fits, watch the cluster this long for one (e.g. 30s, 5m)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand place" -l reservation-ttl -d 'How long the reservation holds if nobody joins' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand place" -s o -l output -d 'Output format' -r -f -a "table\t'Aligned columns for people'
json\t'Stable JSON on stdout for scripts'"
complete -c ionctl -n "__fish_ionctl_using_subcommand place" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand place" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand place" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand place" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand place" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand place" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand place" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand place" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand place" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand serve" -l listen -d 'Address to listen on (e.g. 0.0.0.0:8080; port 0 picks a free one)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand serve" -l reservation-ttl -d 'How long a reservation holds if nobody joins' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand serve" -l max-connections -d 'Gateway client connections at most [default: [gateway] max_connections, 10000]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand serve" -l max-connections-per-ip -d 'Gateway client connections from one IP address at most [default: [gateway] max_connections_per_ip, 100]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand serve" -l client-timeout -d 'Close a gateway client silent this long, pongs included [default: [gateway] client_timeout, 30s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand serve" -l tls-cert -d 'PEM certificate chain: serve HTTPS and wss:// with it (reloaded when the file changes)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand serve" -l tls-key -d 'PEM private key of --tls-cert' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand serve" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand serve" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand serve" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand serve" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand serve" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand serve" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand serve" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand serve" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand serve" -s h -l help -d 'Print help'
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and not __fish_seen_subcommand_from place fleet decide floor help" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and not __fish_seen_subcommand_from place fleet decide floor help" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and not __fish_seen_subcommand_from place fleet decide floor help" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and not __fish_seen_subcommand_from place fleet decide floor help" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and not __fish_seen_subcommand_from place fleet decide floor help" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and not __fish_seen_subcommand_from place fleet decide floor help" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and not __fish_seen_subcommand_from place fleet decide floor help" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and not __fish_seen_subcommand_from place fleet decide floor help" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and not __fish_seen_subcommand_from place fleet decide floor help" -s h -l help -d 'Print help'
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and not __fish_seen_subcommand_from place fleet decide floor help" -f -a "place" -d 'Placements/s with p50/p99 latency against raw etcd txn/s, at several concurrencies'
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and not __fish_seen_subcommand_from place fleet decide floor help" -f -a "fleet" -d 'Keeps N synthetic nodes alive under a prefix of their own (leases, stats writes at the agents\' budget, a few sessions each), so other commands can be measured against an etcd of full size; removes them when it ends and reports etcd\'s write rate'
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and not __fish_seen_subcommand_from place fleet decide floor help" -f -a "decide" -d 'Times production\'s pure `decide` and `plan` on a synthetic cluster of each size, in process (p50/p99 per call)'
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and not __fish_seen_subcommand_from place fleet decide floor help" -f -a "floor" -d 'The cost floor of forwarding: SRTP-protects and sends (sendmmsg) the packets of a load test to loopback receivers and reports the sending thread\'s CPU per packet, to set the agent\'s figure against in the same run (scripts/bench-floor)'
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and not __fish_seen_subcommand_from place fleet decide floor help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from place" -l nodes -d 'Synthetic node records to place onto' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from place" -l operations -d 'Placements (and raw transactions) per concurrency level' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from place" -l class -d 'Class of every placed session' -r -f -a "group\t'2..6 participants, everyone sees everyone'
meeting\t'2..50 participants, last-N video of 9'
conference\t'2..300 participants, up to 6 speakers'
livestream\t'1 publisher and n viewers, on dedicated nodes'
recording\t'A recorder of n tracks, on a dedicated node'"
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from place" -l size -d 'Size of every placed session; small ones put the most reservations on one node' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from place" -l concurrency -d 'Concurrent placers, comma-separated' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from place" -s o -l output -d 'Output format' -r -f -a "table\t'Aligned columns for people'
json\t'Stable JSON on stdout for scripts'"
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from place" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from place" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from place" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from place" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from place" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from place" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from place" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from place" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from place" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from fleet" -l nodes -d 'Synthetic nodes to register' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from fleet" -l sessions-per-node -d 'Meetings of 6 each node carries' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from fleet" -l busy-fraction -d 'Share of the nodes whose load moves on every stats sample (they write as often as the budget allows); the rest write on the heartbeat' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from fleet" -l duration -d 'Stop after this long (e.g. `2m`); without it, run until interrupted' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from fleet" -l fleet-prefix -d 'The key prefix to register under (default: the cluster prefix with `-fleet-<uuid>`). Refused if it is the cluster\'s own prefix' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from fleet" -s o -l output -d 'Output format' -r -f -a "table\t'Aligned columns for people'
json\t'Stable JSON on stdout for scripts'"
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from fleet" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from fleet" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from fleet" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from fleet" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from fleet" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from fleet" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from fleet" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from fleet" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from fleet" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from decide" -l nodes -d 'Cluster sizes in nodes, comma-separated' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from decide" -l sessions-per-node -d 'Meetings of 6 on each used node, at most (a quarter of the nodes are empty)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from decide" -l decisions -d 'Decisions timed per size' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from decide" -l plans -d 'Autoscaler plans timed per size' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from decide" -s o -l output -d 'Output format' -r -f -a "table\t'Aligned columns for people'
json\t'Stable JSON on stdout for scripts'"
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from decide" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from decide" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from decide" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from decide" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from decide" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from decide" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from decide" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from decide" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from decide" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -l receivers -d 'Loopback receivers, one stream each (a load test\'s subscribers)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -l packets-per-second -d 'Packets per second to all receivers together' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -l payload-bytes -d 'RTP payload bytes per packet' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -l duration -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -l batch -d 'Packets per sendmmsg call at most' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -l srtp -d 'SRTP protection profile. The agent\'s str0m prefers AES-256-GCM, and the load generator\'s webrtc-rs offers it: a profile of the agent shows that cipher sealing' -r -f -a "aes128-gcm\t'SRTP_AEAD_AES_128_GCM'
aes256-gcm\t'SRTP_AEAD_AES_256_GCM'"
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -l sender-cpu -d 'Pin the sending thread to this CPU (as the agent is pinned by scripts/bench-loadtest)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -l receiver-cpu -d 'Pin the receiving thread to this CPU' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -l receive -d 'How the receivers read: `poll` (no receiver waits on its socket, so a send wakes nothing) or `wait` (each waits in epoll, as the load generator\'s peers do; on loopback the sender pays each wake-up)' -r -f -a "poll\t'One thread reads every socket in turn and sleeps 1 ms when all are empty. Nothing waits on a socket, so a send wakes nothing: the cheapest delivery there is'
wait\t'Each socket is read by its own task of a Tokio runtime that waits in epoll, as the load generator\'s webrtc-rs peers read theirs. Every datagram then runs the socket\'s epoll callback, and wakes the runtime when it sleeps, inside the sender\'s send call, as each datagram the agent sends to the load generator does. This thread sleeps more often than the load generator\'s runtime, so it pays somewhat more wake-ups per datagram than the agent does (docs/benchmarks.md)'"
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -s o -l output -d 'Output format' -r -f -a "table\t'Aligned columns for people'
json\t'Stable JSON on stdout for scripts'"
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from floor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "place" -d 'Placements/s with p50/p99 latency against raw etcd txn/s, at several concurrencies'
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "fleet" -d 'Keeps N synthetic nodes alive under a prefix of their own (leases, stats writes at the agents\' budget, a few sessions each), so other commands can be measured against an etcd of full size; removes them when it ends and reports etcd\'s write rate'
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "decide" -d 'Times production\'s pure `decide` and `plan` on a synthetic cluster of each size, in process (p50/p99 per call)'
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "floor" -d 'The cost floor of forwarding: SRTP-protects and sends (sendmmsg) the packets of a load test to loopback receivers and reports the sending thread\'s CPU per packet, to set the agent\'s figure against in the same run (scripts/bench-floor)'
complete -c ionctl -n "__fish_ionctl_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ionctl -n "__fish_ionctl_using_subcommand top" -l drain-reason -d 'The reason recorded with drains requested from the dashboard (`d`)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand top" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand top" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand top" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand top" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand top" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand top" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand top" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand top" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand top" -s h -l help -d 'Print help'
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -l reason -d 'Why, for whoever looks at the drain request later' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -l timeout -d 'How long --wait waits (e.g. 30m, 2h)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -s o -l output -d 'Output format' -r -f -a "table\t'Aligned columns for people'
json\t'Stable JSON on stdout for scripts'"
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -l wait -d 'Wait until every node carries no session (exit 5 if --timeout passes first)'
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand undrain" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand undrain" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand undrain" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand undrain" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand undrain" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand undrain" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand undrain" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand undrain" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand undrain" -s h -l help -d 'Print help'
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l machine-type -d 'Machine type, e.g. n2-highcpu-4' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l hold -d 'Hold the new node for this session: no other session is placed on it until this one goes live there or the hold expires' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l hold-ttl -d 'How long the hold lasts at most [default: the agent\'s, 5m]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l provider -d 'Where to create the instance' -r -f -a "gce\t'Compute Engine VMs (configured in [gce])'
local\t'ion-agent processes on this machine'"
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l zone -d 'Create in this zone only, instead of trying the configured zones in order' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l name -d 'Instance (and node) name [default: ion-<machine type>-<6 random characters>]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l timeout -d 'How long --wait waits for the agent to register' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l project -d 'GCE project [env: IONCTL_GCE_PROJECT; config: [gce] project]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l state-dir -d 'Local provider: where agents\' state files and logs go [env: IONCTL_LOCAL_STATE_DIR; default: ~/.local/state/ionctl/local]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l image -d 'GCE boot image with ion-agent [env: IONCTL_GCE_IMAGE; config: [gce] image]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l boot-delay -d 'Local provider: start the agent after this delay, as a VM boots (e.g. 30s) [env: IONCTL_LOCAL_BOOT_DELAY]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -s o -l output -d 'Output format' -r -f -a "table\t'Aligned columns for people'
json\t'Stable JSON on stdout for scripts'"
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l wait -d 'Wait until the instance\'s agent has registered in etcd, showing progress'
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -l spot -d 'GCE: create a Spot VM [env: IONCTL_GCE_SPOT; config: [gce] spot]'
complete -c ionctl -n "__fish_ionctl_using_subcommand spawn" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand instances" -s o -l output -d 'Output format' -r -f -a "table\t'Aligned columns for people'
json\t'Stable JSON on stdout for scripts'"
complete -c ionctl -n "__fish_ionctl_using_subcommand instances" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand instances" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand instances" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand instances" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand instances" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand instances" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand instances" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand instances" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand instances" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand delete" -l timeout -d 'How long to wait for the node\'s sessions to end before giving up (exit 5)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand delete" -l provider -d 'Delete a machine that has no `instances/` record (e.g. after a crashed spawn), with this provider' -r -f -a "gce\t'Compute Engine VMs (configured in [gce])'
local\t'ion-agent processes on this machine'"
complete -c ionctl -n "__fish_ionctl_using_subcommand delete" -l zone -d 'The zone of such a machine (GCE)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand delete" -l project -d 'GCE project [env: IONCTL_GCE_PROJECT; config: [gce] project]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand delete" -l state-dir -d 'Local provider: where agents\' state files and logs go [env: IONCTL_LOCAL_STATE_DIR; default: ~/.local/state/ionctl/local]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand delete" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand delete" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand delete" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand delete" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand delete" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand delete" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand delete" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand delete" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand delete" -l force -d 'Delete at once, without draining: sessions on the node end abruptly'
complete -c ionctl -n "__fish_ionctl_using_subcommand delete" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l provider -d 'Where to create instances' -r -f -a "gce\t'Compute Engine VMs (configured in [gce])'
local\t'ion-agent processes on this machine'"
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l min-nodes -d 'Keep at least this many nodes [config: [autoscale] min_nodes; default 0]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l max-nodes -d 'Never run more than this many nodes and instances in flight [config: max_nodes; default 10]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l warm-pool -d 'Keep N ready idle nodes of TYPE for bursts, e.g. n1-standard-1=1; repeatable [config: [autoscale.warm_pool]]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l idle-timeout -d 'Drain a node idle this long, beyond min and the warm pool [config: idle_timeout; default 5m]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l boot-timeout -d 'Delete and replace an instance whose agent has not registered by then [config: boot_timeout; default 10m]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l pack-machine-type -d 'Type of new shared instances [config: pack_machine_type; default n2-highcpu-4]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l spawn-grace -d 'After an instance spawned for a demand registers, wait this long for the demand to take it before spawning another for it [config: spawn_grace; default 1m]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l max-spawns-per-minute -d 'Spawn at most this many instances in any minute [config: max_spawns_per_minute; default 10]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l min-lifetime -d 'Never drain a node younger than this [config: min_lifetime; default 2m]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l interval -d 'Time between ticks' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l lease-ttl -d 'TTL of the election lease: a dead leader\'s successor takes over within it' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l hold-ttl -d 'How long held instances stay held at most [default: the agent\'s, 5m]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l identity -d 'This replica\'s name in the election [default: ionctl-<pid>]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l project -d 'GCE project [env: IONCTL_GCE_PROJECT; config: [gce] project]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l state-dir -d 'Local provider: where agents\' state files and logs go [env: IONCTL_LOCAL_STATE_DIR; default: ~/.local/state/ionctl/local]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l image -d 'GCE boot image with ion-agent [env: IONCTL_GCE_IMAGE; config: [gce] image]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l boot-delay -d 'Local provider: start the agent after this delay, as a VM boots (e.g. 30s) [env: IONCTL_LOCAL_BOOT_DELAY]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l once -d 'Run one tick once leader, then resign and exit'
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -l spot -d 'GCE: create a Spot VM [env: IONCTL_GCE_SPOT; config: [gce] spot]'
complete -c ionctl -n "__fish_ionctl_using_subcommand autoscale" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l url -d 'The agent\'s signaling URL, e.g. ws://127.0.0.1:7000/ws (Janus under scripts/janus: ws://10.213.0.1:8188, from inside its network namespace)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l target -d 'The SFU at --url: ion (an agent) or janus (Janus\'s videoroom, for a same-run comparison; its CPU is read from /proc when it is local)' -r -f -a "ion\t'An ion-agent (or ion-sfu): JSON-RPC signaling'
janus\t'Janus\'s videoroom plugin over its WebSocket API (ws://HOST:8188), for a side-by-side measurement'"
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l class -d 'Session class for --place [default: livestream for one publisher and more than 5 subscribers, else group up to 6 participants, meeting up to 50, conference above]' -r -f -a "group\t'2..6 participants, everyone sees everyone'
meeting\t'2..50 participants, last-N video of 9'
conference\t'2..300 participants, up to 6 speakers'
livestream\t'1 publisher and n viewers, on dedicated nodes'
recording\t'A recorder of n tracks, on a dedicated node'"
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l session -d 'Session id [default: loadtest-<random>, or a new UUID with --place]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l publishers -d 'Participants that publish video (and audio) and subscribe to everyone else' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l subscribers -d 'Participants that only subscribe. With --calibrate: the most to ramp to' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l duration -d 'The measurement window (each step\'s, with --calibrate) [default: 30s; 10s with --calibrate]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l video-bitrate -d 'VP8 bitrate per publisher: bits/s, with an optional k or M (500k, 1.5M)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l fps -d 'VP8 frames per second' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l ramp -d 'Joins per second' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l warmup -d 'Time after the joins, once media flows, before the window opens' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l agent-cpu -d 'Where the agent\'s CPU comes from: proc (/proc of a local agent), metrics (the agent\'s own process_cpu_seconds_total on its /metrics, also remote), etcd (its node record: the whole machine); auto takes the first of these that is available' -r -f -a "auto\t'The first available of proc, metrics, etcd'
proc\t''
metrics\t''
etcd\t''"
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -s o -l output -d 'Output format' -r -f -a "table\t'Aligned columns for people'
json\t'Stable JSON on stdout for scripts'"
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l place -d 'Get a node from the placer, as `ionctl place` does, and join it with the join token'
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l audio -d 'Publish Opus audio (50 packets/s) beside the video; on unless --no-audio'
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l no-audio -d 'Publish video only'
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l rtx -d 'Offer and accept RTX for VP8, as Chrome does, so that the SFU keeps sent video for resending, and its memory shows it'
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -l calibrate -d 'Ramp subscribers of one publisher (500 kbps VP8 + Opus) until the agent uses 80% of its cores, loss passes 1% or this machine saturates; print units_per_vcpu'
complete -c ionctl -n "__fish_ionctl_using_subcommand loadtest" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and not __fish_seen_subcommand_from start stop list help" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and not __fish_seen_subcommand_from start stop list help" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and not __fish_seen_subcommand_from start stop list help" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and not __fish_seen_subcommand_from start stop list help" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and not __fish_seen_subcommand_from start stop list help" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and not __fish_seen_subcommand_from start stop list help" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and not __fish_seen_subcommand_from start stop list help" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and not __fish_seen_subcommand_from start stop list help" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and not __fish_seen_subcommand_from start stop list help" -s h -l help -d 'Print help'
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and not __fish_seen_subcommand_from start stop list help" -f -a "start" -d 'Record session SID on a node of its own (one WebM per participant)'
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and not __fish_seen_subcommand_from start stop list help" -f -a "stop" -d 'Finish the recording of SID: its files are closed and complete'
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and not __fish_seen_subcommand_from start stop list help" -f -a "list" -d 'Recordings, their node, state, duration, bytes and files'
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and not __fish_seen_subcommand_from start stop list help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from start" -l bucket -d 'Upload the files to this Cloud Storage bucket (`gs://bucket[/prefix]`) when the recording stops [default: keep them on the recorder\'s disk]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from start" -l tracks -d 'Tracks the recorder is sized for (its reservation\'s demand)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from start" -l wait -d 'When no node is free to record on, watch the cluster this long for one (the autoscaler starts one held for the recording)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from start" -s o -l output -d 'Output format' -r -f -a "table\t'Aligned columns for people'
json\t'Stable JSON on stdout for scripts'"
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from start" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from start" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from start" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from start" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from start" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from start" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from start" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from start" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from start" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from stop" -l wait -d 'Wait this long for the recorder to finish the files (0s: do not wait)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from stop" -s o -l output -d 'Output format' -r -f -a "table\t'Aligned columns for people'
json\t'Stable JSON on stdout for scripts'"
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from stop" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from stop" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from stop" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from stop" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from stop" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from stop" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from stop" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from stop" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from stop" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format' -r -f -a "table\t'Aligned columns for people'
json\t'Stable JSON on stdout for scripts'"
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from list" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from list" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from list" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from list" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from list" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from list" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from list" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from list" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from help" -f -a "start" -d 'Record session SID on a node of its own (one WebM per participant)'
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from help" -f -a "stop" -d 'Finish the recording of SID: its files are closed and complete'
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from help" -f -a "list" -d 'Recordings, their node, state, duration, bytes and files'
complete -c ionctl -n "__fish_ionctl_using_subcommand record; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and not __fish_seen_subcommand_from issue help" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and not __fish_seen_subcommand_from issue help" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and not __fish_seen_subcommand_from issue help" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and not __fish_seen_subcommand_from issue help" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and not __fish_seen_subcommand_from issue help" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and not __fish_seen_subcommand_from issue help" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and not __fish_seen_subcommand_from issue help" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and not __fish_seen_subcommand_from issue help" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and not __fish_seen_subcommand_from issue help" -s h -l help -d 'Print help'
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and not __fish_seen_subcommand_from issue help" -f -a "issue" -d 'Print a client token for joining SESSION through the gateway'
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and not __fish_seen_subcommand_from issue help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and __fish_seen_subcommand_from issue" -l session -d 'The session the token admits' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and __fish_seen_subcommand_from issue" -l class -d 'The class to place the session with when it is new [default: [gateway] default_class]' -r -f -a "group\t'2..6 participants, everyone sees everyone'
meeting\t'2..50 participants, last-N video of 9'
conference\t'2..300 participants, up to 6 speakers'
livestream\t'1 publisher and n viewers, on dedicated nodes'
recording\t'A recorder of n tracks, on a dedicated node'"
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and __fish_seen_subcommand_from issue" -l size -d 'Its size [default: [gateway] default_size]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and __fish_seen_subcommand_from issue" -l role -d 'Publisher or viewer: which node of a session that spans nodes [default: publisher, or the gateway URL\'s `role` parameter]' -r -f -a "publisher\t'Publishes: joins the session\'s origin node'
viewer\t'Only watches: joins the edge of a spanning session with the most room'"
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and __fish_seen_subcommand_from issue" -l ttl -d 'How long the token admits joins' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and __fish_seen_subcommand_from issue" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and __fish_seen_subcommand_from issue" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and __fish_seen_subcommand_from issue" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and __fish_seen_subcommand_from issue" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and __fish_seen_subcommand_from issue" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and __fish_seen_subcommand_from issue" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and __fish_seen_subcommand_from issue" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and __fish_seen_subcommand_from issue" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and __fish_seen_subcommand_from issue" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "issue" -d 'Print a client token for joining SESSION through the gateway'
complete -c ionctl -n "__fish_ionctl_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ionctl -n "__fish_ionctl_using_subcommand completions" -l dir -d 'Directory to write the script into' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand completions" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand completions" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand completions" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand completions" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand completions" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand completions" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand completions" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand completions" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand completions" -l stdout -d 'Print the script on stdout instead of writing a file'
complete -c ionctl -n "__fish_ionctl_using_subcommand completions" -s h -l help -d 'Print help'
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l trace -d 'Replay this trace (JSON lines: t, sid, class, size, duration, participants; see docs/simulate.md) instead of a synthetic day' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l sessions -d 'Sessions of the synthetic day' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l seed -d 'Seed of the synthetic day and of the policies\' random choices (two-choice); with `--trace`, of the random choices only' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l hours -d 'Hours of synthetic arrivals' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l write-trace -d 'Write the trace replayed (synthetic or read) to FILE as JSON lines' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l policies -d 'Policies to compare, comma-separated: ours, seed, livekit-lowest, livekit-twochoice, livekit-hpa, jitsi, gce-mig [default: all]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l boot-delay -d 'Time from asking for a machine to its agent registering' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l boot-delay-for -d 'Boot delay of one machine type, e.g. n2-highcpu-32=90s; repeatable' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l load-lag -d 'How far reported load trails the load carried' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l patience -d 'A caller gives up after waiting this long (counted as refused)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l prices -d 'Hourly prices (TOML: ["TYPE"] on_demand = $, spot = $) over the built-in table' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l units-per-vcpu -d 'Capacity units per vCPU' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l strategy -d 'Our placement strategy' -r -f -a "binpack\t'Fill used nodes first, the fullest after placement wins, so empty nodes can go'
spread\t'The least utilised node after placement wins'"
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l warm-pool -d 'Our warm pool, TYPE=N, repeatable; `none` for no warm pool [default: n2-highcpu-4=1]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l idle-timeout -d 'Our idle timeout before a node is drained' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l pack-machine-type -d 'Type of our new shared instances' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l max-spawns-per-minute -d 'Our autoscaler\'s cap on spawns per minute' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l machine-type -d 'The machine type of the other policies\' fleets (and of the fluid bound)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l fleet -d 'Machines of the fixed LiveKit fleets [default: the trace\'s peak at 60% CPU]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l min-nodes -d 'The fewest machines an autoscaled anchor fleet keeps' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l max-nodes -d 'The most machines any policy runs' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l threads -d 'Threads to run policies on [default: one per core]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l svg -d 'Write charts of nodes and load over the day, per policy, as SVG' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l html -d 'Write the table and the charts as one HTML page' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -s o -l output -d 'Output format' -r -f -a "table\t'Aligned columns for people'
json\t'Stable JSON on stdout for scripts'"
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l etcd-ca -d 'CA certificate (PEM) that signed etcd\'s; turns on TLS towards etcd' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l etcd-cert -d 'Client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l etcd-key -d 'The client certificate\'s private key (PEM)' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l etcd-user -d 'etcd user, with RBAC; the password comes from IONCTL_ETCD_PASSWORD or [etcd] password' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand simulate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions place serve bench top drain undrain spawn instances delete autoscale loadtest record token completions simulate help" -f -a "nodes" -d 'List the cluster\'s nodes with their state, size and load'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions place serve bench top drain undrain spawn instances delete autoscale loadtest record token completions simulate help" -f -a "sessions" -d 'List sessions and the nodes that carry them'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions place serve bench top drain undrain spawn instances delete autoscale loadtest record token completions simulate help" -f -a "place" -d 'Place a session: pick a node, reserve it, print the node, signal URL and a join token'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions place serve bench top drain undrain spawn instances delete autoscale loadtest record token completions simulate help" -f -a "serve" -d 'Serve placement and cluster reads over HTTP for web front ends'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions place serve bench top drain undrain spawn instances delete autoscale loadtest record token completions simulate help" -f -a "bench" -d 'Benchmarks: `bench place` measures placements/s against raw etcd txn/s'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions place serve bench top drain undrain spawn instances delete autoscale loadtest record token completions simulate help" -f -a "top" -d 'Live dashboard: nodes, load, sessions, drains and events, updated from etcd watches'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions place serve bench top drain undrain spawn instances delete autoscale loadtest record token completions simulate help" -f -a "drain" -d 'Ask nodes to take no new sessions; their sessions continue (writes drain/<node>)'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions place serve bench top drain undrain spawn instances delete autoscale loadtest record token completions simulate help" -f -a "undrain" -d 'Return drained nodes to ready (deletes drain/<node>)'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions place serve bench top drain undrain spawn instances delete autoscale loadtest record token completions simulate help" -f -a "spawn" -d 'Create an instance (GCE VM or local agent process) that joins the cluster'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions place serve bench top drain undrain spawn instances delete autoscale loadtest record token completions simulate help" -f -a "instances" -d 'List the instances created by spawn (or the autoscaler) and their nodes'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions place serve bench top drain undrain spawn instances delete autoscale loadtest record token completions simulate help" -f -a "delete" -d 'Drain an instance\'s node, then delete the instance'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions place serve bench top drain undrain spawn instances delete autoscale loadtest record token completions simulate help" -f -a "autoscale" -d 'Leader-elected controller: spawns held and shared instances for pending demand, keeps a warm pool, drains and deletes idle nodes'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions place serve bench top drain undrain spawn instances delete autoscale loadtest record token completions simulate help" -f -a "loadtest" -d 'Load-test an agent with webrtc-rs participants: loss, latency and the agent\'s CPU per forwarded packet; --calibrate measures units_per_vcpu'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions place serve bench top drain undrain spawn instances delete autoscale loadtest record token completions simulate help" -f -a "record" -d 'Record sessions: `record start SID`, `record stop SID`, `record list`'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions place serve bench top drain undrain spawn instances delete autoscale loadtest record token completions simulate help" -f -a "token" -d 'Client tokens for the gateway (`serve`\'s /ws): `token issue --session S`'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions place serve bench top drain undrain spawn instances delete autoscale loadtest record token completions simulate help" -f -a "completions" -d 'Write shell completion scripts (bash, zsh, fish)'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions place serve bench top drain undrain spawn instances delete autoscale loadtest record token completions simulate help" -f -a "simulate" -d 'Replay a day of sessions through our placement and autoscaler and the anchors\' policies (LiveKit, Jitsi, GCE MIG, the seed): cost, waits, overload'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions place serve bench top drain undrain spawn instances delete autoscale loadtest record token completions simulate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and __fish_seen_subcommand_from bench" -f -a "place" -d 'Placements/s with p50/p99 latency against raw etcd txn/s, at several concurrencies'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and __fish_seen_subcommand_from bench" -f -a "fleet" -d 'Keeps N synthetic nodes alive under a prefix of their own (leases, stats writes at the agents\' budget, a few sessions each), so other commands can be measured against an etcd of full size; removes them when it ends and reports etcd\'s write rate'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and __fish_seen_subcommand_from bench" -f -a "decide" -d 'Times production\'s pure `decide` and `plan` on a synthetic cluster of each size, in process (p50/p99 per call)'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and __fish_seen_subcommand_from bench" -f -a "floor" -d 'The cost floor of forwarding: SRTP-protects and sends (sendmmsg) the packets of a load test to loopback receivers and reports the sending thread\'s CPU per packet, to set the agent\'s figure against in the same run (scripts/bench-floor)'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and __fish_seen_subcommand_from record" -f -a "start" -d 'Record session SID on a node of its own (one WebM per participant)'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and __fish_seen_subcommand_from record" -f -a "stop" -d 'Finish the recording of SID: its files are closed and complete'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and __fish_seen_subcommand_from record" -f -a "list" -d 'Recordings, their node, state, duration, bytes and files'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "issue" -d 'Print a client token for joining SESSION through the gateway'
