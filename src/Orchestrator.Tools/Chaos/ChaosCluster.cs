using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Orchestrator.Cli;
using Orchestrator.Node;
using Orchestrator.Tools.Bench;

namespace Orchestrator.Tools.Chaos;

/// <summary>
/// The cluster a chaos run works on, through the product's own script: <c>cluster/local.sh start N --netns --postgres</c>
/// (each host in its own network namespace, one PostgreSQL on the underlay), and its fault verbs. Runs this build's
/// node (ORC_NODE_DLL). Disposing stops every node, guard, guest and PostgreSQL and removes the namespaces.
/// </summary>
public sealed class ChaosCluster : IAsyncDisposable
{
    private readonly Dictionary<int, (int Pid, HttpClient Http)> _clients = [];
    private readonly string _dir = Directory.CreateTempSubdirectory("orc-chaos").FullName;
    private readonly int _postgresPort = Checkout.FreePort();

    private readonly (string Prefix, string Subnet) _namespaces;

    private ChaosCluster(int hosts, (string Prefix, string Subnet) namespaces)
    {
        Hosts = hosts;
        _namespaces = namespaces;
        // PostgreSQL's data dir is made below it and runs as the postgres user, who must be able to reach it.
        File.SetUnixFileMode(_dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                                   UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
    }

    public int Hosts { get; }

    /// <summary>Every host's run directory (its QEMU processes' pid files), for the double-run sampler.</summary>
    public IReadOnlyList<string> RunDirs => Enumerable.Range(1, Hosts).Select(i => Path.Combine(_dir, $"h{i}", "run")).ToList();

    public static async Task<ChaosCluster> StartAsync(int hosts, (string Prefix, string Subnet) namespaces, TextWriter log, CancellationToken ct)
    {
        var cluster = new ChaosCluster(hosts, namespaces);
        try
        {
            cluster.Script("start", hosts.ToString(CultureInfo.InvariantCulture), "--netns", "--postgres");
            await BenchHttp.Until(async () => await cluster.HostsUpAsync() == hosts, TimeSpan.FromSeconds(120), $"{hosts} hosts Up", ct);
            log.WriteLine($"chaos: {hosts} hosts Up (cluster dir {cluster._dir})");
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs <c>cluster/local.sh ARGS</c> for this cluster; throws with its output when it fails.</summary>
    public string Script(params string[] args)
    {
        var start = new ProcessStartInfo(Path.Combine(Checkout.Root(), "cluster", "local.sh"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["ORC_CLUSTER_DIR"] = _dir;
        start.Environment["ORC_NETNS_PREFIX"] = _namespaces.Prefix;
        start.Environment["ORC_NETNS_SUBNET"] = _namespaces.Subnet;
        start.Environment["ORC_POSTGRES_PORT"] = _postgresPort.ToString(CultureInfo.InvariantCulture);
        start.Environment["ORC_NODE_DLL"] = typeof(NodeHost).Assembly.Location;
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"cluster/local.sh {string.Join(' ', args)} failed ({process.ExitCode}): {error.Trim()}");
        }

        return output.Result;
    }

    public int? NodePid(int host) =>
        int.TryParse(File.Exists(PidFile(host)) ? File.ReadAllText(PidFile(host)).Trim() : "", out var pid) ? pid : null;

    public bool NodeAlive(int host) => NodePid(host) is { } pid && ProcessTable.IsAlive(pid);

    private string PidFile(int host) => Path.Combine(_dir, $"h{host}", "node.pid");

    /// <summary>
    /// An admin client of host <paramref name="host"/>'s API, or null while its node is down or has not written where
    /// it listens. A restarted node listens on a new port: the client follows its discovery file.
    /// </summary>
    public HttpClient? Client(int host)
    {
        lock (_clients)
        {
            var found = NodeDiscoveryFiles.TryRead(Path.Combine(_dir, $"h{host}"));
            if (found is not { AdminKey: { } key } || !ProcessTable.IsAlive(found.Pid))
            {
                return null;
            }

            if (_clients.TryGetValue(host, out var cached) && cached.Pid == found.Pid)
            {
                return cached.Http;
            }

            var http = new HttpClient { BaseAddress = new Uri(found.Url), Timeout = TimeSpan.FromSeconds(8) };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            _clients[host] = (found.Pid, http);
            return http;
        }
    }

    /// <summary>Hosts Up as the first node that answers sees them (0 when none answers).</summary>
    public async Task<int> HostsUpAsync()
    {
        foreach (var host in Enumerable.Range(1, Hosts))
        {
            if (await HostStatesAsync(host) is { } states)
            {
                return states.Count(s => s.Value == "Up");
            }
        }

        return 0;
    }

    /// <summary>Host id → state, as host <paramref name="asking"/> sees them; null when it does not answer.</summary>
    public async Task<IReadOnlyDictionary<string, string>?> HostStatesAsync(int asking)
    {
        if (Client(asking) is not { } http)
        {
            return null;
        }

        try
        {
            var hosts = JsonNode.Parse(await http.GetStringAsync("v1/hosts"))!.AsArray();
            return hosts.ToDictionary(h => (string)h!["id"]!, h => (string?)h!["state"] ?? "");
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
        {
            return null;
        }
    }

    /// <summary>Copies every host's node and guard log to <paramref name="to"/> (the cluster dir goes with the cluster).</summary>
    public void KeepLogs(string to)
    {
        for (var host = 1; host <= Hosts; host++)
        {
            foreach (var log in new[] { Path.Combine(_dir, $"h{host}", "node.log"), Path.Combine(_dir, $"h{host}", "run", "guard.log") })
            {
                if (File.Exists(log))
                {
                    Directory.CreateDirectory(to);
                    File.Copy(log, Path.Combine(to, $"h{host}-{Path.GetFileName(log)}"), overwrite: true);
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            Script("stop");
        }
        catch (InvalidOperationException)
        {
            // stop removes what it finds; a half-started cluster leaves less to find
        }

        lock (_clients)
        {
            foreach (var (_, http) in _clients.Values)
            {
                http.Dispose();
            }
        }

        await Task.CompletedTask;
    }
}
