// `bench failover|shares|boot|streams|console|metrics|io`: benchmarks that start real nodes (processes) or guests on this machine.
using System.CommandLine;
using Orchestrator.Cli;
using Orchestrator.Tools.Bench;

namespace Orchestrator.Tools;

/// <summary>Options of <c>orchestrator bench failover</c>.</summary>
/// <param name="KillScheduler">kill the node that holds the scheduler (the oldest) instead of another host.</param>
public sealed record FailoverBenchOptions(int Hosts, int Vms, int Runs, bool KillScheduler, string? ConfigFile, OutputFormat Output);

/// <summary>Options of <c>orchestrator bench shares</c>.</summary>
/// <param name="Cpu">the physical CPU the guests share; null = the last one.</param>
public sealed record SharesBenchOptions(int? Cpu, int WindowSeconds, OutputFormat Output);

/// <param name="Driver">qemu, kvm, or null: kvm where /dev/kvm works, else qemu (as the host's driver = auto).</param>
public sealed record BootBenchOptions(string? Driver, int Boots, int Burst, int Vcpus, int MemoryMiB, OutputFormat Output);

/// <summary>Options of <c>orchestrator bench streams</c>.</summary>
/// <param name="Streams">event streams (SSE, follow) held open while the requests are timed.</param>
/// <param name="Requests">ordinary requests timed one after another.</param>
public sealed record StreamsBenchOptions(int Streams, int Requests, OutputFormat Output);

/// <summary>Options of <c>orchestrator bench metrics</c>: VMs created, then the node's idle CPU over IdleSeconds, then Scrapes timed.</summary>
public sealed record MetricsBenchOptions(int Vms, int Scrapes, int IdleSeconds, OutputFormat Output);

/// <summary>Options of <c>orchestrator bench console</c>: keys timed, after <paramref name="Warmup"/> untimed ones.</summary>
public sealed record ConsoleBenchOptions(int Keys, int Warmup, OutputFormat Output);

public static class ClusterToolCommands
{
    /// <summary>Adds <c>failover</c>, <c>shares</c>, <c>boot</c>, <c>streams</c>, <c>console</c> and <c>metrics</c> to <paramref name="bench"/>.</summary>
    public static void AddTo(Command bench)
    {
        var hosts = new Option<int>("--hosts") { Description = "Node processes (each a host).", DefaultValueFactory = _ => 3 };
        hosts.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 3)
            {
                r.AddError("--hosts must be at least 3: a majority must survive the kill");
            }
        });
        var vms = new Option<int>("--vms") { Description = "Demo VMs spread over the hosts.", DefaultValueFactory = _ => 30 };
        vms.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 1)
            {
                r.AddError("--vms must be at least 1");
            }
        });
        var runs = new Option<int>("--runs") { Description = "Repeat the whole measurement; prints the median.", DefaultValueFactory = _ => 1 };
        var killScheduler = new Option<bool>("--kill-scheduler") { Description = "Kill the node that holds the scheduler." };
        var config = new Option<FileInfo>("--config") { Description = "Extra HOCON for every node (default: cluster/cluster.conf)." }
            .AcceptExistingOnly();
        var output = new Option<OutputFormat>("--output", "-o") { Description = "table or json.", DefaultValueFactory = _ => OutputFormat.Table };
        var command = new Command("failover", "Start a cluster here, place VMs, kill one host for real, time until its guests are ready elsewhere.")
        {
            hosts, vms, runs, killScheduler, config, output,
        };
        command.SetAction((parse, ct) => FailoverBenchmark.RunAsync(new FailoverBenchOptions(
            parse.GetValue(hosts), parse.GetValue(vms), Math.Max(1, parse.GetValue(runs)), parse.GetValue(killScheduler),
            parse.GetValue(config)?.FullName, parse.GetValue(output)), ct));
        bench.Subcommands.Add(command);
        bench.Subcommands.Add(SharesCommand(SharesBenchmark.RunAsync));
        bench.Subcommands.Add(BootCommand(BootBench.RunAsync));
        bench.Subcommands.Add(StreamsCommand(StreamsBench.RunAsync));
        bench.Subcommands.Add(ConsoleCommand(ConsoleBench.RunAsync));
        bench.Subcommands.Add(IoBenchmark.Command());
        bench.Subcommands.Add(NetBenchmark.Command());
        bench.Subcommands.Add(MetricsCommand(MetricsBench.RunAsync));
    }

    private static Command MetricsCommand(Func<MetricsBenchOptions, CancellationToken, Task<int>> run)
    {
        var vms = new Option<int>("--vms") { Description = "Simulated VMs created before the scrapes.", DefaultValueFactory = _ => 10_000 }.Within(1, 1_000_000);
        var scrapes = new Option<int>("--scrapes") { Description = "Scrapes of /metrics, one after another.", DefaultValueFactory = _ => 30 }.Within(1, 10_000);
        var idle = new Option<int>("--idle-seconds") { Description = "Seconds the node's idle CPU is measured first.", DefaultValueFactory = _ => 10 }.Within(1, 600);
        var output = new Option<OutputFormat>("--output", "-o") { Description = "table or json.", DefaultValueFactory = _ => OutputFormat.Table };
        var command = new Command("metrics",
            "Start a node on loopback with simulated hosts, create VMs, then time GET /metrics: the node's CPU per scrape above idle, series and bytes.")
        {
            vms, scrapes, idle, output,
        };
        command.SetAction((parse, ct) => run(new MetricsBenchOptions(parse.GetValue(vms), parse.GetValue(scrapes), parse.GetValue(idle), parse.GetValue(output)), ct));
        return command;
    }

    private static Command ConsoleCommand(Func<ConsoleBenchOptions, CancellationToken, Task<int>> run)
    {
        var keys = new Option<int>("--keys") { Description = "Keys timed, one at a time.", DefaultValueFactory = _ => 200 }.Within(1, 100_000);
        var output = new Option<OutputFormat>("--output", "-o") { Description = "table or json.", DefaultValueFactory = _ => OutputFormat.Table };
        var command = new Command("console",
            "Start a node on loopback with one demo guest, type keys into its serial console over the WebSocket, time each echo; print p50/p99/max.")
        {
            keys, output,
        };
        command.SetAction((parse, ct) => run(new ConsoleBenchOptions(parse.GetValue(keys), 20, parse.GetValue(output)), ct));
        return command;
    }

    private static Command StreamsCommand(Func<StreamsBenchOptions, CancellationToken, Task<int>> run)
    {
        var streams = new Option<int>("--streams") { Description = "Event streams held open (GET /v1/events, follow).", DefaultValueFactory = _ => 300 }
            .Within(0, 5000);
        var requests = new Option<int>("--requests") { Description = "Requests timed, one after another.", DefaultValueFactory = _ => 2000 }
            .Within(1, 1_000_000);
        var output = new Option<OutputFormat>("--output", "-o") { Description = "table or json.", DefaultValueFactory = _ => OutputFormat.Table };
        var command = new Command("streams",
            "Start a node on loopback, hold event streams open, time ordinary requests (GET /v1/vms); print latency p50/p99/max.")
        {
            streams, requests, output,
        };
        command.SetAction((parse, ct) => run(new StreamsBenchOptions(parse.GetValue(streams), parse.GetValue(requests), parse.GetValue(output)), ct));
        return command;
    }

    private static Command BootCommand(Func<BootBenchOptions, CancellationToken, Task<int>> run)
    {
        var driver = new Option<string>("--driver")
        {
            Description = "The driver to boot with (default: kvm where /dev/kvm works, else qemu).",
        }.AcceptOnlyFromAmong("kvm", "qemu");
        var boots = AtLeastOne(new Option<int>("--boots") { Description = "VMs booted one after another.", DefaultValueFactory = _ => 10 });
        var burst = AtLeastOne(new Option<int>("--burst") { Description = "VMs then started at once.", DefaultValueFactory = _ => 4 });
        var vcpus = AtLeastOne(new Option<int>("--vcpus") { Description = "vCPUs per VM.", DefaultValueFactory = _ => 1 });
        var memory = new Option<int>("--memory") { Description = "Memory per VM in MiB.", HelpName = "MIB", DefaultValueFactory = _ => 256 }
            .Within(64, 65536, unit: "MiB");
        var output = new Option<OutputFormat>("--output", "-o") { Description = "table or json.", DefaultValueFactory = _ => OutputFormat.Table };
        var command = new Command("boot",
            "Boot the demo image through a driver, one VM at a time and then several at once; print start → ready banner p50/p99, " +
            "the VMM's own memory per VM and VMs created per second.")
        {
            driver, boots, burst, vcpus, memory, output,
        };
        command.SetAction((parse, ct) => run(new BootBenchOptions(parse.GetValue(driver), parse.GetValue(boots), parse.GetValue(burst),
            parse.GetValue(vcpus), parse.GetValue(memory), parse.GetValue(output)), ct));
        return command;
    }

    private static Option<int> AtLeastOne(Option<int> option) => option.Within(1, 1000);

    private static Command SharesCommand(Func<SharesBenchOptions, CancellationToken, Task<int>> run)
    {
        var cpu = new Option<int?>("--cpu") { Description = "The physical CPU the guests share (default: the last one)." };
        var window = new Option<int>("--window") { Description = "Seconds measured per setting.", DefaultValueFactory = _ => 20 }
            .Within(2, 600, unit: "seconds");
        var output = new Option<OutputFormat>("--output", "-o") { Description = "table or json.", DefaultValueFactory = _ => OutputFormat.Table };
        var command = new Command("shares",
            "Boot three CPU-burning guests on one pinned CPU; print each VM's entitled and measured CPU for shares 2:1:1, then a reservation and a limit.")
        {
            cpu, window, output,
        };
        command.SetAction((parse, ct) => run(new SharesBenchOptions(parse.GetValue(cpu), parse.GetValue(window), parse.GetValue(output)), ct));
        return command;
    }
}
