// `orchestrator node`: its options, their syntax and validation. What it does is NodeHost's.
using System.CommandLine;
using Orchestrator.Cli;

namespace Orchestrator.Node.Commands;

/// <summary>Options of <c>orchestrator node</c>, for <see cref="NodeHost.RunAsync"/>.</summary>
/// <param name="ConfigFiles">Full paths of the <c>--config</c> files, in the order given (each exists).</param>
/// <param name="DataDirectory">Already resolved by <see cref="Cli.DataDirectory.Resolve(string?)"/>; may not exist yet.</param>
/// <param name="ListenHost">Host part of <c>--listen</c>, IPv6 without brackets.</param>
/// <param name="ListenPort">0 means any free port: write the bound one to node.json.</param>
/// <param name="DemoVms">How many demo VMs to create at start.</param>
/// <param name="Seeds">Cluster addresses to join (<c>--seed</c>).</param>
/// <param name="Bootstrap">Form a new cluster when no seed answers (<c>--bootstrap</c>).</param>
/// <param name="Settings">HOCON <c>KEY=VALUE</c> lines from <c>--set</c>, applied over the config files.</param>
public sealed record NodeCommandOptions(
    IReadOnlyList<string> ConfigFiles,
    string DataDirectory,
    string ListenHost,
    int ListenPort,
    int DemoVms,
    IReadOnlyList<string>? Seeds = null,
    bool Bootstrap = false,
    IReadOnlyList<string>? Settings = null)
{
    public const string DefaultListen = "127.0.0.1:7480";

    /// <summary><c>http://host:port</c> for Kestrel (brackets added for IPv6).</summary>
    public string ListenUrl => $"http://{(ListenHost.Contains(':') ? $"[{ListenHost}]" : ListenHost)}:{ListenPort}";
}

public static class NodeCommand
{
    /// <summary>The <c>node</c> command, handing its parsed options to <paramref name="run"/> (which owns the signals).</summary>
    public static ForegroundCommand Build(Func<NodeCommandOptions, CancellationToken, Task<int>> run)
    {
        ArgumentNullException.ThrowIfNull(run);

        var config = new Option<FileInfo[]>("--config")
        {
            Description = "A HOCON file layered over the built-in defaults (repeatable; later files win).",
            HelpName = "FILE",
            Arity = ArgumentArity.OneOrMore,
        }.AcceptExistingOnly();
        var data = new Option<string>("--data") { Description = "Data directory: database, discovery files, VM disks.", HelpName = "DIR" };
        var listen = new Option<string>("--listen")
        {
            Description = "HTTP API address HOST:PORT (port 0 = any free port).",
            HelpName = "HOST:PORT",
            DefaultValueFactory = _ => NodeCommandOptions.DefaultListen,
        };
        listen.Validators.Add(result =>
        {
            if (!TryParseListen(result.GetValueOrDefault<string>(), out _, out _))
            {
                result.AddError("--listen must be HOST:PORT with a port from 0 to 65535 (e.g. 127.0.0.1:7480, [::1]:0)");
            }
        });
        var demoVms = new Option<int>("--demo-vms")
        {
            Description = "Create this many demo VMs at start.",
            HelpName = "N",
            DefaultValueFactory = _ => 0,
        };
        demoVms.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int>() < 0)
            {
                result.AddError("--demo-vms must be 0 or more");
            }
        });

        var seeds = new Option<string[]>("--seed")
        {
            Description = "A cluster node to join, e.g. akka.tcp://orchestrator@10.0.0.1:4053 (repeatable).",
            HelpName = "ADDRESS",
            Arity = ArgumentArity.OneOrMore,
        };
        var bootstrap = new Option<bool>("--bootstrap")
        {
            Description = "Form a new cluster if no seed answers (default: only when there are no seeds).",
        };
        var settings = new Option<string[]>("--set")
        {
            Description = "One HOCON setting, e.g. --set orchestrator.host-id=h2 (repeatable; wins over --config).",
            HelpName = "KEY=VALUE",
            Arity = ArgumentArity.OneOrMore,
        };
        settings.Validators.Add(result =>
        {
            foreach (var setting in result.GetValueOrDefault<string[]>() ?? [])
            {
                if (!setting.Contains('=') || setting.StartsWith('=') || setting.Contains('\n'))
                {
                    result.AddError($"--set {setting}: expected KEY=VALUE on one line");
                }
            }
        });

        var command = new ForegroundCommand("node", "Run a node in the foreground: scheduler, host agent and HTTP API.")
        {
            config, data, listen, demoVms, seeds, bootstrap, settings,
        };
        command.SetAction((parse, ct) =>
        {
            TryParseListen(parse.GetValue(listen), out var host, out var port);
            var options = new NodeCommandOptions(
                (parse.GetValue(config) ?? []).Select(f => f.FullName).ToArray(),
                ResolveDataDirectory(parse.GetValue(data)),
                host,
                port,
                parse.GetValue(demoVms),
                parse.GetValue(seeds) ?? [],
                parse.GetValue(bootstrap),
                parse.GetValue(settings) ?? []);
            return run(options, ct);
        });
        return command;
    }

    /// <summary>HOST:PORT, IPv6 as [addr]:port; port 0..65535.</summary>
    public static bool TryParseListen(string? text, out string host, out int port)
    {
        host = "";
        port = 0;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out port) || port > 65535)
        {
            return false;
        }

        host = text[..colon];
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
        }
        else if (host.Contains(':'))
        {
            return false; // bare IPv6 is ambiguous: ask for brackets
        }

        return host.Length > 0;
    }

    private static string ResolveDataDirectory(string? flag)
    {
        try
        {
            return DataDirectory.Resolve(flag);
        }
        catch (InvalidOperationException e)
        {
            throw new CliException(e.Message);
        }
    }
}
