// `bench chaos`: the fault exerciser.
using System.CommandLine;
using Orchestrator.Cli;
using Orchestrator.Tools.Chaos;

namespace Orchestrator.Tools;

public static class ChaosToolCommands
{
    private static readonly IReadOnlyDictionary<string, FaultKind> FaultNames = Enum.GetValues<FaultKind>()
        .ToDictionary(k => System.Text.Json.JsonNamingPolicy.KebabCaseLower.ConvertName(k.ToString()), k => k, StringComparer.Ordinal);

    public static void AddTo(Command bench)
    {
        var hosts = new Option<int>("--hosts") { Description = "Hosts, each in its own network namespace.", DefaultValueFactory = _ => 3 }
            .Within(3, 9, "a majority must survive a host fault");
        var minutes = new Option<double>("--minutes") { Description = "How long the workload and the faults run.", DefaultValueFactory = _ => 10 }
            .Within(0.5, 1440);
        var seed = new Option<int>("--seed") { Description = "Seed of the fault schedule and the workload (default: the time).", DefaultValueFactory = _ => Environment.TickCount & 0xFFFF };
        var clients = new Option<int>("--clients") { Description = "Concurrent clients, each with its own VMs.", DefaultValueFactory = _ => 2 }
            .Within(1, 16);
        var faults = new Option<string>("--faults")
        {
            Description = $"Comma-separated fault kinds (default: all): {string.Join(", ", FaultNames.Keys)}.",
            DefaultValueFactory = _ => string.Join(',', FaultNames.Keys),
        };
        faults.Validators.Add(r =>
        {
            var (kinds, unknown) = Parse(r.GetValueOrDefault<string>() ?? "");
            if (kinds.Count == 0 && unknown.Count == 0)
            {
                r.AddError($"--faults must name at least one fault kind (known: {string.Join(", ", FaultNames.Keys)})");
            }
            else if (unknown.Count > 0)
            {
                r.AddError($"--faults: unknown fault kind {string.Join(", ", unknown.Select(u => $"'{u}'"))} (known: {string.Join(", ", FaultNames.Keys)})");
            }
        });
        var converge = new Option<int>("--converge-seconds") { Description = "Bound on every VM reaching its desired state after the last heal.", DefaultValueFactory = _ => 240 }
            .Within(10, 3600);
        var output = new Option<OutputFormat>("--output", "-o") { Description = "table or json.", DefaultValueFactory = _ => OutputFormat.Table };
        var command = new Command("chaos",
            "Run a multi-host cluster on PostgreSQL in network namespaces under a client workload and random faults, then check the history; exits 1 on any violation.")
        {
            hosts, minutes, seed, clients, faults, converge, output,
        };
        command.SetAction((parse, ct) => ChaosBenchmark.RunAsync(new ChaosBenchOptions(
            parse.GetValue(hosts), parse.GetValue(minutes), parse.GetValue(seed), parse.GetValue(clients),
            Parse(parse.GetValue(faults) ?? "").Kinds, parse.GetValue(converge), parse.GetValue(output)), ct));
        bench.Subcommands.Add(command);
    }

    private static (IReadOnlySet<FaultKind> Kinds, IReadOnlyList<string> Unknown) Parse(string text)
    {
        var names = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        return (names.Where(FaultNames.ContainsKey).Select(n => FaultNames[n]).ToHashSet(),
            names.Where(n => !FaultNames.ContainsKey(n)).ToList());
    }
}
