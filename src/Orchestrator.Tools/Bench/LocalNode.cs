using System.Diagnostics;
using System.Net.Http.Headers;
using Orchestrator.Cli;
using Orchestrator.Node;

namespace Orchestrator.Tools.Bench;

/// <summary>
/// An `orchestrator node` child process on this machine, with its own data dir and an HTTP client holding its admin
/// key. Used by benchmarks that need a real cluster of processes.
/// </summary>
public sealed class LocalNode : IAsyncDisposable
{
    private readonly Process _process;

    private LocalNode(Process process, string dataDir)
    {
        _process = process;
        DataDir = dataDir;
    }

    public string DataDir { get; }
    public string RunDir => Path.Combine(DataDir, "run");
    public HttpClient Http { get; private set; } = null!;
    public bool HasExited => _process.HasExited;

    /// <summary>The node's process (the shell execs it, so its pid is the node's).</summary>
    public int Pid => _process.Id;

    /// <summary>Starts `orchestrator node --data DIR --listen 127.0.0.1:0 ARGS` with its output in DIR/node.log.</summary>
    /// <param name="cpus">a CPU list the node (and whatever it starts outside its VMs' cgroups) is confined to.</param>
    public static async Task<LocalNode> StartAsync(string dataDir, IEnumerable<string> args, CancellationToken ct, string? cpus = null)
    {
        Directory.CreateDirectory(dataDir);
        var log = Path.Combine(dataDir, "node.log");
        // The node's own dll, run by the same dotnet host, so a benchmark measures exactly this build.
        var confine = cpus is null ? "" : $"taskset -c {cpus} ";
        var script = $"exec {confine}\"$0\" \"$@\" >>{Quote(log)} 2>&1";
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        foreach (var arg in new[] { "-c", script, Environment.ProcessPath!, typeof(NodeHost).Assembly.Location, "node", "--data", dataDir, "--listen", "127.0.0.1:0" }.Concat(args))
        {
            start.ArgumentList.Add(arg);
        }

        var node = new LocalNode(Process.Start(start)!, dataDir);
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            ct.ThrowIfCancellationRequested();
            if (node.HasExited)
            {
                throw new InvalidOperationException($"node in {dataDir} exited at start; see {log}");
            }

            if (NodeDiscoveryFiles.TryRead(dataDir) is { AdminKey: { } key } found && found.Pid == node._process.Id)
            {
                node.Http = new HttpClient { BaseAddress = new Uri(found.Url), Timeout = TimeSpan.FromSeconds(10) };
                node.Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
                return node;
            }

            await Task.Delay(100, ct);
        }

        throw new TimeoutException($"node in {dataDir} did not write node.json within 90 s; see {log}");
    }

    /// <summary>The whole host dies at once: node and fence guard killed; its guests die with the guard (pdeathsig).</summary>
    public void KillHost()
    {
        ProcessTable.Kill(_process.Id);
        foreach (var guard in ProcessTable.Matching(Path.Combine(RunDir, "guard.sock")))
        {
            ProcessTable.Kill(guard);
        }
    }

    public async ValueTask DisposeAsync()
    {
        KillHost();
        await _process.WaitForExitAsync();
        Http?.Dispose();
    }

    private static string Quote(string path) => "'" + path.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
