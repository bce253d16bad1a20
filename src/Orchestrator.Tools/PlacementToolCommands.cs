// `simulate`, `bench placement|durable` and `scale`: placement at scale, in this process (scale --nodes N: N node processes).
using System.CommandLine;
using Orchestrator.Cli;
using Orchestrator.Simulation;
using Orchestrator.Tools.Bench;

namespace Orchestrator.Tools;

public static class PlacementToolCommands
{
    /// <summary>Adds <c>simulate</c> and <c>scale</c> to <paramref name="root"/>, <c>placement</c> and <c>durable</c> to <paramref name="bench"/>.</summary>
    public static void AddTo(Command root, Command bench)
    {
        root.Subcommands.Add(SimulateCommand());
        bench.Subcommands.Add(BenchCommand(durable: false));
        bench.Subcommands.Add(BenchCommand(durable: true));
        root.Subcommands.Add(ScaleCommand());
    }

    private static Command SimulateCommand()
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
            if (r.GetValueOrDefault<string>() is { } s && !Simulation.SimulateCommand.TryParseHostSize(s, out _, out _))
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
        command.SetAction((parse, ct) => Simulation.SimulateCommand.RunAsync(new SimulateOptions(
            parse.GetValue(trace)!.FullName, parse.GetValue(hosts), parse.GetValue(hostSize), parse.GetValue(policy)!,
            parse.GetValue(durable), parse.GetValue(output), parse.GetValue(plot)), ct));
        return command;
    }

    private static Command BenchCommand(bool durable)
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
        var snapshotEvery = Positive("--snapshot-every", "Events between the scheduler's snapshots (whole or incremental), as the node's setting.", 100_000);
        var output = OutputOption();
        var command = durable
            ? new Command("durable", "Durable placements/s and latency through the scheduler actor, persisted to SQLite or PostgreSQL.")
            {
                hosts, requests, rate, concurrency, policy, data, store, snapshotEvery, output,
            }
            : new Command("placement", "Placement decisions/s and latency in memory (CapacityIndex over simulated hosts).")
            {
                hosts, requests, rate, policy, output,
            };
        command.SetAction((parse, ct) => Simulation.BenchCommand.RunAsync(new BenchOptions(
            durable, parse.GetValue(hosts), parse.GetValue(requests), Math.Max(0, parse.GetValue(rate)), parse.GetValue(concurrency),
            parse.GetValue(policy)!, durable ? parse.GetValue(data) : null, parse.GetValue(output),
            durable ? parse.GetValue(store)! : "sqlite", parse.GetValue(snapshotEvery)), ct));
        return command;
    }

    private static Command ScaleCommand()
    {
        var hosts = Positive("--hosts", "Simulated hosts.", 10_000);
        var vms = Positive("--vms", "VMs to place through the scheduler actor.", 1_000_000);
        var snapshotEvery = Positive("--snapshot-every", "Events between the scheduler's snapshots (whole or incremental).", 100_000);
        var data = new Option<string>("--data") { Description = "Where the SQLite file goes (default: a temporary directory, removed after).", HelpName = "DIR" };
        var nodes = Positive("--nodes", "Node processes: 1 runs the scheduler actor in this process; more start a cluster here whose nodes share the hosts (simulated driver), and kill the scheduler's node to time its recovery elsewhere.", 1);
        var recover = new Option<bool>("--recover")
        {
            Description = "Place nothing: start a scheduler in this fresh process on the ledger an earlier `scale --data DIR` left in --data, and time its recovery (cold), then a second one in the same process (warm).",
        };
        var output = OutputOption();
        var command = new Command("scale", "Simulated hosts and VMs through the scheduler actor on SQLite: memory per allocation, snapshot size, recovery time.")
        {
            hosts, vms, snapshotEvery, data, nodes, recover, output,
        };
        command.Validators.Add(r =>
        {
            if (r.GetValue(recover) && (r.GetValue(data) is null || r.GetValue(nodes) > 1))
            {
                r.AddError("--recover needs --data DIR, the directory of an earlier `scale --data DIR` run, and one node");
            }
        });
        command.SetAction((parse, ct) =>
        {
            var options = new ScaleOptions(parse.GetValue(hosts), parse.GetValue(vms), parse.GetValue(snapshotEvery), parse.GetValue(data),
                parse.GetValue(output), parse.GetValue(nodes), parse.GetValue(recover));
            return options.Nodes > 1 ? ClusterScaleBenchmark.RunAsync(options, ct) : Simulation.ScaleCommand.RunAsync(options, ct);
        });
        return command;
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
