using Orchestrator.Cli;
using Orchestrator.Tools.Chaos;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// A short run of the fault exerciser (<c>bench chaos</c>): three hosts in network namespaces on one PostgreSQL, two
/// clients creating, stopping, starting, deleting and re-labelling VMs, and a fixed seed's faults, each healed; then
/// the history is checked. Long runs are the command's, not the suite's.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class ChaosTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_short_run_of_faults_under_a_workload_loses_nothing_acknowledged_and_converges()
    {
        var options = new ChaosBenchOptions(Hosts: 3, Minutes: 0.5, Seed: 11, Clients: 2, Faults: Enum.GetValues<FaultKind>().ToHashSet(),
            ConvergeSeconds: 240, Output: OutputFormat.Table, Namespaces: ("orcct", "10.238.0")); // apart from a `bench chaos` run's

        var report = await ChaosBenchmark.RunOnceAsync(options, new OutputWriter(output), CancellationToken.None);

        var printed = new StringWriter();
        ChaosBenchmark.Print(report, OutputFormat.Table, printed);
        output.WriteLine(printed.ToString());
        Assert.Empty(report.Violations);
        Assert.True(report.Faults.Count >= 2, "the nemesis injected at least two faults");
        Assert.True(report.Operations.Values.Sum(o => o.GetValueOrDefault("ok")) > 0, "some operations were acknowledged");
        Assert.NotNull(report.ConvergedAfterLastHealS);
        Assert.True(report.EventsLive > 0, "the live stream delivered events");
    }

    /// <summary>The exerciser's progress lines, into the test's output.</summary>
    private sealed class OutputWriter(ITestOutputHelper output) : TextWriter
    {
        public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;

        public override void WriteLine(string? value) => output.WriteLine(value ?? "");
    }
}
