using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>One log pipeline: Akka's lines and the node's in one format, levels per category, JSON for operators.</summary>
[Collection(NodeCollection.Name)]
public sealed partial class LoggingTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_node_logging_json_prints_only_json_lines_akkas_among_them()
    {
        await using var node = await NodeProcess.StartAsync(output, "orchestrator.logging.format = json");
        // The scheduler answered, so the cluster is up; its Akka lines travel through the logger actor after that.
        await node.Eventually(() => Task.FromResult<bool?>(node.Lines.Any(l => l.Contains("\"Category\":\"Akka.Cluster", StringComparison.Ordinal))),
            TimeSpan.FromSeconds(30), "an Akka.Cluster line");
        await node.StopAsync(); // the lines Akka writes while it shuts down too

        var entries = node.Lines.Where(l => l.Length > 0).Select(line =>
        {
            var parsed = JsonNode.Parse(line) as JsonObject;
            Assert.True(parsed is not null, $"not a JSON object: {line}");
            return parsed;
        }).ToList();
        Assert.All(entries, e => Assert.False(string.IsNullOrEmpty((string?)e["Category"]) || string.IsNullOrEmpty((string?)e["LogLevel"])));
        Assert.Contains(entries, e => ((string?)e["Message"])?.StartsWith("node ", StringComparison.Ordinal) == true
                                      && ((string?)e["Message"])!.Contains(" up: roles ", StringComparison.Ordinal));
        var akka = entries.First(e => ((string?)e["Category"])!.StartsWith("Akka.Cluster", StringComparison.Ordinal));
        Assert.False(string.IsNullOrEmpty((string?)akka["State"]?["LogSource"]));
    }

    [Fact]
    public async Task Text_lines_share_one_format_and_a_category_level_silences_that_category()
    {
        await using var node = await NodeProcess.StartAsync(output, """orchestrator.logging.levels { "Akka.Cluster" = Warning }""");
        // The scheduler logs through Akka after the cluster's own start-up lines: once it is there, they would be too.
        await node.Eventually(() => Task.FromResult<bool?>(node.Lines.Any(l => l.Contains("info: Orchestrator.Actors.Scheduler.SchedulerActor", StringComparison.Ordinal))),
            TimeSpan.FromSeconds(30), "the scheduler's recovery line");
        var lines = node.Lines.Where(l => l.Length > 0).ToList();
        Assert.All(lines, line => Assert.Matches(TextLine(), line));
        Assert.DoesNotContain(lines, l => l.Contains(" info: Akka.Cluster", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains(" info: Akka.Remote", StringComparison.Ordinal)); // other Akka categories still speak
    }

    [Theory]
    [InlineData("orchestrator.logging.level=Loud", "orchestrator.logging.level: unknown level 'Loud'")]
    [InlineData("orchestrator.logging.format=xml", "orchestrator.logging.format: unknown format 'xml'")]
    public async Task An_unknown_log_level_or_format_refuses_to_start_and_says_which(string setting, string message)
    {
        var data = Directory.CreateTempSubdirectory("orlg").FullName;
        try
        {
            var run = await OrchestratorCommand.RunAsync(output, ["node", "--data", data, "--listen", "127.0.0.1:0", "--set", setting],
                TimeSpan.FromSeconds(60));
            Assert.Equal(2, run.ExitCode);
            Assert.Contains(message, run.Error);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    /// <summary>date time level: category[event id] message — the node's lines and Akka's alike.</summary>
    [GeneratedRegex(@"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (trce|dbug|info|warn|fail|crit): [^ \[]+\[\d+\] ")]
    private static partial Regex TextLine();
}
