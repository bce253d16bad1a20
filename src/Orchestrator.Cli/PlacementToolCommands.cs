// `simulate`, `bench placement|durable` and `scale`: placement at scale, run in this process by the executable's hooks.
using System.CommandLine;

namespace Orchestrator.Cli;

/// <summary>Options of <c>orchestrator simulate</c>.</summary>
/// <param name="HostSize">CPU[,MEMORY_GIB] per host, as typed (null: the trace's capacity, or 48,384).</param>
/// <param name="Policy">A placement strategy of the scheduler (pack, spread).</param>
public sealed record SimulateOptions(
    string Trace, int? Hosts, string? HostSize, string Policy, bool Durable, OutputFormat Output, string? Plot);

/// <summary>Options of <c>orchestrator bench placement</c> (in memory) and <c>bench durable</c> (scheduler actor on SQLite).</summary>
/// <param name="Rate">Requests per second offered (0: as fast as it goes, a closed loop of <paramref name="Concurrency"/>).</param>
public sealed record BenchOptions(
    bool Durable, int Hosts, int Requests, int Rate, int Concurrency, string Policy, string? DataDirectory, OutputFormat Output,
    string Store = "sqlite");

/// <summary>Options of <c>orchestrator scale</c>: simulated hosts and VMs through the scheduler actor, then recovery.</summary>
/// <param name="Nodes">1: the scheduler actor in this process; more: that many node processes here, in a cluster, with the
/// simulated driver, driven through their HTTP API.</param>
public sealed record ScaleOptions(int Hosts, int Vms, int SnapshotEvery, string? DataDirectory, OutputFormat Output, int Nodes = 1);

/// <summary>Hooks the executable supplies for the placement tools (the CLI holds no server code).</summary>
public sealed record PlacementToolHooks(
    Func<SimulateOptions, CancellationToken, Task<int>> Simulate,
    Func<BenchOptions, CancellationToken, Task<int>> Bench,
    Func<ScaleOptions, CancellationToken, Task<int>> Scale);

public static class PlacementToolCommands
{
    public static void AddTo(RootCommand root, PlacementToolHooks? hooks)
    {
        if (hooks is null)
        {
            return;
        }

        root.Subcommands.Add(SimulateCommand(hooks));
        var bench = new Command("bench", "Placement benchmarks: decisions in memory, or durable placements through the scheduler.");
        bench.Subcommands.Add(BenchCommand(hooks, durable: false));
        bench.Subcommands.Add(BenchCommand(hooks, durable: true));
        root.Subcommands.Add(bench);
        root.Subcommands.Add(ScaleCommand(hooks));
    }

    private static Command SimulateCommand(PlacementToolHooks hooks)
    {
        var trace = new Option<FileInfo>("--trace")
        {
            Description = "A trace file: an Azure 2020 tbpp instance (n_tau_k.txt) or Azure V1 arrivals (v1.dev.txt, v1.test.txt).",
            HelpName = "FILE",
            Required = true,
        }.AcceptExistingOnly();
        var hosts = new Option<int?>("--hosts") { Description = "Simulated hosts (default: enough that nothing is rejected).", HelpName = "N" };
        hosts.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is <= 0)
            {
                r.AddError("--hosts must be positive");
            }
        });
        var hostSize = new Option<string>("--host-size")
        {
            Description = "CPU[,MEMORY_GIB] of each host (default: the tbpp capacity 100; 48,384 for Azure V1).",
            HelpName = "CPU[,MEM]",
        };
        hostSize.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string>() is { } s && !TryParseHostSize(s, out _, out _))
            {
                r.AddError("--host-size must be CPU or CPU,MEMORY_GIB with positive numbers (e.g. 48,384)");
            }
        });
        var policy = PolicyOption();
        var durable = new Option<bool>("--durable") { Description = "Also replay through the scheduler actor with SQLite persistence." };
        var output = OutputOption();
        var plot = new Option<string>("--plot") { Description = "Write an SVG of active hosts over time against the lower bound.", HelpName = "FILE.svg" };
        var command = new Command("simulate", "Replay a VM trace through the scheduler's placement and a first-fit baseline; print packing and speed.")
        {
            trace, hosts, hostSize, policy, durable, output, plot,
        };
        command.SetAction((parse, ct) => hooks.Simulate(new SimulateOptions(
            parse.GetValue(trace)!.FullName, parse.GetValue(hosts), parse.GetValue(hostSize), parse.GetValue(policy)!,
            parse.GetValue(durable), parse.GetValue(output), parse.GetValue(plot)), ct));
        return command;
    }

    private static Command BenchCommand(PlacementToolHooks hooks, bool durable)
    {
        var hosts = Positive("--hosts", "Simulated hosts.", 10_000);
        var requests = Positive("--requests", "VM creations to send.", durable ? 20_000 : 200_000);
        var rate = new Option<int>("--rate")
        {
            Description = "Offered requests per second (0: as fast as the scheduler answers).",
            HelpName = "PER_S",
            DefaultValueFactory = _ => 0,
        };
        var concurrency = Positive("--concurrency", "With --rate 0: requests in flight at once.", 256);
        var policy = PolicyOption();
        var data = new Option<string>("--data") { Description = "Where the SQLite file goes (default: a temporary directory, removed after).", HelpName = "DIR" };
        var store = new Option<string>("--store")
        {
            Description = "The journal: sqlite (a file), or postgres (the server $ORCHESTRATOR_POSTGRES names; the bench makes a " +
                          "database of its own there and drops it after).",
            HelpName = "STORE",
            DefaultValueFactory = _ => "sqlite",
        };
        store.AcceptOnlyFromAmong("sqlite", "postgres");
        var output = OutputOption();
        var command = durable
            ? new Command("durable", "Durable placements/s and latency through the scheduler actor, persisted to SQLite or PostgreSQL.")
            {
                hosts, requests, rate, concurrency, policy, data, store, output,
            }
            : new Command("placement", "Placement decisions/s and latency in memory (CapacityIndex over simulated hosts).")
            {
                hosts, requests, rate, policy, output,
            };
        command.SetAction((parse, ct) => hooks.Bench(new BenchOptions(
            durable, parse.GetValue(hosts), parse.GetValue(requests), Math.Max(0, parse.GetValue(rate)), parse.GetValue(concurrency),
            parse.GetValue(policy)!, durable ? parse.GetValue(data) : null, parse.GetValue(output),
            durable ? parse.GetValue(store)! : "sqlite"), ct));
        return command;
    }

    private static Command ScaleCommand(PlacementToolHooks hooks)
    {
        var hosts = Positive("--hosts", "Simulated hosts.", 10_000);
        var vms = Positive("--vms", "VMs to place through the scheduler actor.", 1_000_000);
        var snapshotEvery = Positive("--snapshot-every", "Events between the scheduler's snapshots.", 1_000_000);
        var data = new Option<string>("--data") { Description = "Where the SQLite file goes (default: a temporary directory, removed after).", HelpName = "DIR" };
        var nodes = Positive("--nodes", "Node processes: 1 runs the scheduler actor in this process; more start a cluster here whose nodes share the hosts (simulated driver), and kill the scheduler's node to time its recovery elsewhere.", 1);
        var output = OutputOption();
        var command = new Command("scale", "Simulated hosts and VMs through the scheduler actor on SQLite: memory per allocation, snapshot size, recovery time.")
        {
            hosts, vms, snapshotEvery, data, nodes, output,
        };
        command.SetAction((parse, ct) => hooks.Scale(new ScaleOptions(
            parse.GetValue(hosts), parse.GetValue(vms), parse.GetValue(snapshotEvery), parse.GetValue(data), parse.GetValue(output),
            parse.GetValue(nodes)), ct));
        return command;
    }

    /// <summary>CPU or CPU,MEMORY_GIB.</summary>
    public static bool TryParseHostSize(string text, out int cpus, out long memoryGib)
    {
        memoryGib = 0;
        cpus = 0;
        var parts = text.Split(',');
        var ok = parts.Length is 1 or 2
                 && int.TryParse(parts[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out cpus)
                 && cpus > 0;
        if (!ok)
        {
            cpus = 0;
            return false;
        }

        return parts.Length == 1
               || (long.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out memoryGib)
                   && memoryGib > 0);
    }

    private static Option<string> PolicyOption()
    {
        var policy = new Option<string>("--policy")
        {
            Description = "Placement strategy, as orchestrator.scheduler.strategy: pack (best fit) or spread.",
            HelpName = "pack|spread",
            DefaultValueFactory = _ => "pack",
        };
        policy.AcceptOnlyFromAmong("pack", "spread");
        return policy;
    }

    private static Option<OutputFormat> OutputOption() => new("--output", "-o")
    {
        Description = "table (default) or json.",
        HelpName = "table|json",
        DefaultValueFactory = _ => OutputFormat.Table,
        CustomParser = r => r.Tokens.Single().Value.ToLowerInvariant() switch
        {
            "table" => OutputFormat.Table,
            "json" => OutputFormat.Json,
            var other => Fail(r, other),
        },
    };

    private static OutputFormat Fail(System.CommandLine.Parsing.ArgumentResult r, string other)
    {
        r.AddError($"--output must be table or json, not '{other}'");
        return OutputFormat.Table;
    }

    private static Option<int> Positive(string name, string description, int defaultValue)
    {
        var option = new Option<int>(name) { Description = description, HelpName = "N", DefaultValueFactory = _ => defaultValue };
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() <= 0)
            {
                r.AddError($"{name} must be positive");
            }
        });
        return option;
    }
}
