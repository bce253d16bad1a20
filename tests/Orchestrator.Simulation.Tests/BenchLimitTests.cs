using System.Text.Json;
using Orchestrator.Cli;

namespace Orchestrator.Simulation.Tests;

/// <summary>The durable benchmark measures its store's own limit in the same run and reports it beside its figures.</summary>
[Collection(ConsoleOutput.Name)]
public sealed class BenchLimitTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("orchestrator-bench-test");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public void The_SQLite_limit_is_measured_in_a_file_of_its_own_that_is_gone_after()
    {
        var limit = StoreLimit.MeasureSqlite(_directory.FullName);

        Assert.Equal("sqlite", limit.Store);
        Assert.True(limit.RowsPerS > 0, $"rows/s {limit.RowsPerS}");
        Assert.True(limit.CommitP50Ms > 0 && limit.CommitP50Ms <= limit.CommitP99Ms, $"p50 {limit.CommitP50Ms} p99 {limit.CommitP99Ms}");
        Assert.Empty(_directory.GetFileSystemInfos());
    }

    [Fact]
    public async Task Bench_durable_json_carries_the_limit_the_ratios_and_the_cost_per_placement()
    {
        using var report = await DurableJsonAsync(requests: 200, rate: 0);
        var root = report.RootElement;
        // 20 hosts cannot take every VM: each request is answered, placed or pending.
        Assert.Equal(200, root.GetProperty("placed").GetInt32() + root.GetProperty("pending").GetInt32());
        // A closed loop is primed first through a scheduler of its own (in a directory of its own, gone after), in rounds
        // that its hosts can take all together: 20 hosts, rounds of 22 requests.
        var primed = root.GetProperty("priming_requests").GetInt32();
        Assert.True(primed > 0 && primed % 22 == 0, $"priming requests {primed}");
        var limit = root.GetProperty("limit");
        Assert.Equal("sqlite", limit.GetProperty("store").GetString());
        Assert.True(limit.GetProperty("rows_per_s").GetDouble() > 0);
        var ratios = root.GetProperty("ratios");
        Assert.Equal(
            Math.Round(root.GetProperty("placements_per_s").GetDouble() / limit.GetProperty("rows_per_s").GetDouble(), 4),
            ratios.GetProperty("placements_to_rows").GetDouble());
        Assert.True(ratios.GetProperty("p99_to_commit_p99").GetDouble() > 0);
        // The window's own rows, written again by the journal's writer alone: every request's events (its VmRequested, and
        // its placement or why it waits) with their tags; in a file of its own that is gone after.
        var writer = root.GetProperty("writer");
        Assert.Equal("sqlite", writer.GetProperty("store").GetString());
        Assert.Equal(200, writer.GetProperty("requests").GetInt32());
        Assert.True(writer.GetProperty("requests_per_s").GetDouble() > 0);
        Assert.InRange(writer.GetProperty("rows_per_request").GetDouble(), 1.0, 2.0);
        // Every event of a VM carries its tenant's tag, and only that.
        Assert.Equal(writer.GetProperty("rows_per_request").GetDouble(), writer.GetProperty("tags_per_request").GetDouble(), 3);
        Assert.Equal(Math.Round(root.GetProperty("placements_per_s").GetDouble() / writer.GetProperty("requests_per_s").GetDouble(), 4),
            ratios.GetProperty("placements_to_writer").GetDouble());
        Assert.DoesNotContain(_directory.GetFiles(), file => file.Name.StartsWith("journal-writer-limit", StringComparison.Ordinal));
        var costs = root.GetProperty("costs");
        Assert.True(costs.GetProperty("cpu_ms_per_placement").GetDouble() > 0);
        Assert.True(costs.GetProperty("bytes_allocated_per_placement").GetInt64() > 0);
        // What the compiler took of the window is said (some, or none once warm), never a negative reading.
        Assert.True(costs.GetProperty("compiler_ms").GetDouble() >= 0);
        Assert.True(costs.GetProperty("gc_pause_ms").GetDouble() >= 0);
    }

    [Fact]
    public async Task Bench_durable_at_a_rate_warms_up_at_that_rate_and_never_with_more_requests_than_it_measures()
    {
        using var report = await DurableJsonAsync(requests: 150, rate: 500);
        var root = report.RootElement;
        Assert.Equal(150, root.GetProperty("placed").GetInt32() + root.GetProperty("pending").GetInt32());
        // Rounds of a second's requests, cut to the measured count: one round of 150 here, as a run's bound allows.
        Assert.Equal(150, root.GetProperty("warmup_requests").GetInt32());
        Assert.Equal(500, root.GetProperty("rate").GetInt32());
        Assert.Equal(0, root.GetProperty("priming_requests").GetInt32()); // its warm-up is at its rate, on its own scheduler
    }

    [Fact]
    public async Task Bench_durable_snapshots_the_ledger_as_often_as_it_is_told()
    {
        // 20 registrations, 50 warm-up creations and 200 measured ones: hundreds of events, a snapshot every 50.
        using var report = await DurableJsonAsync(requests: 200, rate: 0, snapshotEvery: 50);
        Assert.Equal(50, report.RootElement.GetProperty("snapshot_every").GetInt32());

        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(_directory.FullName, "orchestrator.snapshots.db")}");
        await connection.OpenAsync();
        await using var count = connection.CreateCommand();
        count.CommandText = "SELECT count(*) FROM snapshot WHERE persistence_id = 'scheduler'";
        Assert.True((long)(await count.ExecuteScalarAsync())! > 0, "the scheduler saved no snapshot");
    }

    /// <summary>`bench durable -o json` on 20 hosts, in this test's directory; it must exit 0.</summary>
    private async Task<JsonDocument> DurableJsonAsync(int requests, int rate, int snapshotEvery = 100_000)
    {
        var options = new BenchOptions(Durable: true, Hosts: 20, Requests: requests, Rate: rate, Concurrency: 16, Policy: "pack",
            DataDirectory: _directory.FullName, Output: OutputFormat.Json, SnapshotEvery: snapshotEvery);
        var (exit, text) = await ConsoleOutput.Of(() => BenchCommand.RunAsync(options, CancellationToken.None));

        Assert.Equal(0, exit);
        return JsonDocument.Parse(text[text.IndexOf('{')..]);
    }

    [Theory]
    [InlineData(20_000, 1_000, 10)] // at most ten rounds
    [InlineData(50_000, 5_000, 4)] // at most 20,000 requests in all
    [InlineData(12_000, 5_000, 2)] // never more warm-up requests than measured ones
    [InlineData(100, 5_000, 1)] // and at least one round
    public void Open_loop_warm_up_rounds_are_bounded(int requests, int perRound, int expected) =>
        Assert.Equal(expected, BenchCommand.MaxOpenLoopWarmUpRounds(requests, perRound));
}
