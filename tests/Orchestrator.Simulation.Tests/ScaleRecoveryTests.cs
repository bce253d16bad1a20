using System.Text.Json;
using Orchestrator.Cli;

namespace Orchestrator.Simulation.Tests;

/// <summary><c>scale --recover</c>: a scheduler in this process recovers the ledger an earlier <c>scale --data</c> left.</summary>
[Collection(ConsoleOutput.Name)]
public sealed class ScaleRecoveryTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("orchestrator-scale-test");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public async Task A_kept_ledger_is_recovered_whole_from_its_snapshot_chain_and_the_scheduler_says_where_the_time_went()
    {
        // A snapshot every 40 events: the 300 VMs leave a chain of incremental snapshots and a journal tail.
        var placing = new ScaleOptions(Hosts: 4, Vms: 300, SnapshotEvery: 40, _directory.FullName, OutputFormat.Json);
        var (placed, _) = await ConsoleOutput.Of(() => ScaleCommand.RunAsync(placing, CancellationToken.None));
        Assert.Equal(0, placed);

        var (exit, text) = await ConsoleOutput.Of(() => ScaleCommand.RunAsync(placing with { Recover = true }, CancellationToken.None));

        Assert.Equal(0, exit);
        using var report = JsonDocument.Parse(text[text.IndexOf('{')..]);
        var root = report.RootElement;
        Assert.Equal(4, root.GetProperty("hosts").GetInt32());
        Assert.Equal(300, root.GetProperty("vms").GetInt32());
        Assert.True(root.GetProperty("recovery_s").GetDouble() > 0);
        Assert.Contains("snapshot read", root.GetProperty("phases").GetString());
        // The second recovery, in the same process, heard with its own line: the same ledger, whole again.
        Assert.True(root.GetProperty("warm_first_answer_s").GetDouble() > 0);
        Assert.Equal(300, root.GetProperty("warm_vms").GetInt32());
        Assert.Contains("snapshot read", root.GetProperty("warm_phases").GetString());
    }

    [Fact]
    public async Task Recovering_a_directory_with_no_ledger_says_so_and_fails()
    {
        var stderr = new StringWriter();
        var error = Console.Error;
        Console.SetError(stderr);
        try
        {
            var recover = new ScaleOptions(Hosts: 4, Vms: 10, SnapshotEvery: 40, _directory.FullName, OutputFormat.Json, Recover: true);
            Assert.Equal(2, await ScaleCommand.RunAsync(recover, CancellationToken.None));
        }
        finally
        {
            Console.SetError(error);
        }

        Assert.Contains("no ledger in", stderr.ToString());
        Assert.Empty(_directory.GetFileSystemInfos());
    }
}
