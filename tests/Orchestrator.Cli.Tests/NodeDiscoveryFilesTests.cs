using System.Text.Json;

namespace Orchestrator.Cli.Tests;

public class NodeDiscoveryFilesTests
{
    [Fact]
    public async Task What_the_node_writes_the_client_reads_back()
    {
        using var dir = new TempDir();
        var data = dir.Sub("data");

        await NodeDiscoveryFiles.WriteAsync(data, "http://127.0.0.1:43121", 1234, "k3y-value");

        var found = NodeDiscoveryFiles.TryRead(data);
        Assert.Equal(new NodeDiscovery("http://127.0.0.1:43121", 1234, "k3y-value"), found);
    }

    [Fact]
    public async Task Node_json_has_the_documented_shape()
    {
        using var dir = new TempDir();
        await NodeDiscoveryFiles.WriteAsync(dir.Path, "http://127.0.0.1:7480", 99, "k");

        using var doc = JsonDocument.Parse(await File.ReadAllTextAsync(dir.Sub("node.json")));
        Assert.Equal("http://127.0.0.1:7480", doc.RootElement.GetProperty("url").GetString());
        Assert.Equal(99, doc.RootElement.GetProperty("pid").GetInt32());
        Assert.Equal("k\n", await File.ReadAllTextAsync(dir.Sub("admin.key")));
    }

    [Fact]
    public async Task The_admin_key_file_and_node_json_are_readable_by_their_owner_only()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        using var dir = new TempDir();
        var data = dir.Sub("data");
        await NodeDiscoveryFiles.WriteAsync(data, "http://127.0.0.1:7480", 1, "k");

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(data, "admin.key")));
        // node.json says only where the node listens, but every file in the data directory is its owner's alone.
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(data, "node.json")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(data));
    }

    [Fact]
    public async Task Rewriting_replaces_both_files_and_leaves_no_temporary_files()
    {
        using var dir = new TempDir();
        await NodeDiscoveryFiles.WriteAsync(dir.Path, "http://127.0.0.1:1", 1, "old");
        await NodeDiscoveryFiles.WriteAsync(dir.Path, "http://127.0.0.1:2", 2, "new");

        Assert.Equal(new NodeDiscovery("http://127.0.0.1:2", 2, "new"), NodeDiscoveryFiles.TryRead(dir.Path));
        Assert.Equal(new[] { "admin.key", "node.json" }, Directory.GetFiles(dir.Path).Select(f => Path.GetFileName(f)!).Order().ToArray());
    }

    [Fact]
    public async Task A_missing_or_corrupt_node_json_reads_as_no_node()
    {
        using var dir = new TempDir();
        Assert.Null(NodeDiscoveryFiles.TryRead(dir.Sub("nowhere")));

        await File.WriteAllTextAsync(dir.Sub("node.json"), "{not json");
        Assert.Null(NodeDiscoveryFiles.TryRead(dir.Path));
    }

    [Fact]
    public async Task A_missing_admin_key_reads_as_no_key()
    {
        using var dir = new TempDir();
        await File.WriteAllTextAsync(dir.Sub("node.json"), """{"url":"http://127.0.0.1:7480","pid":5}""");

        Assert.Equal(new NodeDiscovery("http://127.0.0.1:7480", 5, null), NodeDiscoveryFiles.TryRead(dir.Path));
    }

    [Fact]
    public async Task Remove_deletes_node_json_only_for_the_node_that_wrote_it()
    {
        using var dir = new TempDir();
        await NodeDiscoveryFiles.WriteAsync(dir.Path, "http://127.0.0.1:7480", 10, "k");

        NodeDiscoveryFiles.Remove(dir.Path, pid: 11);
        Assert.NotNull(NodeDiscoveryFiles.TryRead(dir.Path));

        NodeDiscoveryFiles.Remove(dir.Path, pid: 10);
        Assert.Null(NodeDiscoveryFiles.TryRead(dir.Path));
        Assert.True(File.Exists(dir.Sub("admin.key")));
    }

    [Fact]
    public void The_admin_key_never_shows_in_the_discovery_text() =>
        Assert.DoesNotContain("sekrit", new NodeDiscovery("http://x", 1, "sekrit").ToString());
}
