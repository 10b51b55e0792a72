# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ionctl_global_optspecs
    string join \n etcd= prefix= connect-timeout= config= h/help V/version
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
complete -c ionctl -n "__fish_ionctl_needs_command" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_needs_command" -s V -l version -d 'Print version'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "nodes" -d 'List the cluster\'s nodes with their state, size and load'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "sessions" -d 'List sessions and the nodes that carry them'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "top" -d 'Live dashboard: nodes, load, sessions, drains and events, updated from etcd watches'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "drain" -d 'Ask nodes to take no new sessions; their sessions continue (writes drain/<node>)'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "undrain" -d 'Return drained nodes to ready (deletes drain/<node>)'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "completions" -d 'Write shell completion scripts (bash, zsh, fish)'
complete -c ionctl -n "__fish_ionctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ionctl -n "__fish_ionctl_using_subcommand nodes" -s o -l output -d 'Output format' -r -f -a "table\t'Aligned columns for people'
json\t'Stable JSON on stdout for scripts'"
complete -c ionctl -n "__fish_ionctl_using_subcommand nodes" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand nodes" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand nodes" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand nodes" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand nodes" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand sessions" -l node -d 'Only sessions on this node' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand sessions" -s o -l output -d 'Output format' -r -f -a "table\t'Aligned columns for people'
json\t'Stable JSON on stdout for scripts'"
complete -c ionctl -n "__fish_ionctl_using_subcommand sessions" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand sessions" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand sessions" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand sessions" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand sessions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand top" -l drain-reason -d 'The reason recorded with drains requested from the dashboard (`d`)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand top" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand top" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand top" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand top" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand top" -s h -l help -d 'Print help'
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -l reason -d 'Why, for whoever looks at the drain request later' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -s o -l output -d 'Output format' -r -f -a "table\t'Aligned columns for people'
json\t'Stable JSON on stdout for scripts'"
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand drain" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ionctl -n "__fish_ionctl_using_subcommand undrain" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand undrain" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand undrain" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand undrain" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand undrain" -s h -l help -d 'Print help'
complete -c ionctl -n "__fish_ionctl_using_subcommand completions" -l dir -d 'Directory to write the script into' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand completions" -l etcd -d 'etcd endpoints, comma-separated (e.g. http://10.0.0.2:2379,http://10.0.0.3:2379)' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand completions" -l prefix -d 'Key prefix of the cluster in etcd [default: /ion/v1/]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand completions" -l connect-timeout -d 'How long to wait for etcd before giving up (e.g. 3s, 500ms) [default: 3s]' -r
complete -c ionctl -n "__fish_ionctl_using_subcommand completions" -l config -d 'Config file [default: ~/.config/ionctl/config.toml, if present]' -r -F
complete -c ionctl -n "__fish_ionctl_using_subcommand completions" -l stdout -d 'Print the script on stdout instead of writing a file'
complete -c ionctl -n "__fish_ionctl_using_subcommand completions" -s h -l help -d 'Print help'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions top drain undrain completions help" -f -a "nodes" -d 'List the cluster\'s nodes with their state, size and load'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions top drain undrain completions help" -f -a "sessions" -d 'List sessions and the nodes that carry them'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions top drain undrain completions help" -f -a "top" -d 'Live dashboard: nodes, load, sessions, drains and events, updated from etcd watches'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions top drain undrain completions help" -f -a "drain" -d 'Ask nodes to take no new sessions; their sessions continue (writes drain/<node>)'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions top drain undrain completions help" -f -a "undrain" -d 'Return drained nodes to ready (deletes drain/<node>)'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions top drain undrain completions help" -f -a "completions" -d 'Write shell completion scripts (bash, zsh, fish)'
complete -c ionctl -n "__fish_ionctl_using_subcommand help; and not __fish_seen_subcommand_from nodes sessions top drain undrain completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
