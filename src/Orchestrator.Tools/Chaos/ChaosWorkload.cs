using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Orchestrator.Tools.Bench;

namespace Orchestrator.Tools.Chaos;

/// <summary>
/// The clients of a chaos run: each owns its own VMs (so one VM's operations never overlap) and, until told to stop,
/// creates, stops, starts, deletes and re-labels them through a random host's API, recording every answer in the
/// history. A create whose answer was lost is retried on another host with the same idempotency key, as a careful
/// client would.
/// </summary>
public sealed class ChaosWorkload(ChaosCluster cluster, ChaosHistory history, Stopwatch clock, int seed)
{
    /// <summary>The VM label the workload rewrites.</summary>
    public const string LabelKey = "chaos";

    /// <summary>Each client keeps about this many VMs of its own (guests under TCG share two cores with the hosts).</summary>
    private const int VmsPerClient = 3;

    public async Task RunAsync(int clients, CancellationToken stop)
    {
        await Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(() => ClientAsync(c, new Random(seed * 31 + c), stop))));
    }

    private async Task ClientAsync(int client, Random random, CancellationToken stop)
    {
        var mine = new List<string>();
        var created = 0;
        while (!stop.IsCancellationRequested)
        {
            if (mine.Count < VmsPerClient && random.NextDouble() < 0.6 || mine.Count == 0)
            {
                var name = $"c{client}-vm{++created}";
                if (await CreateAsync(name, random))
                {
                    mine.Add(name);
                }
            }
            else
            {
                var vm = mine[random.Next(mine.Count)];
                var roll = random.NextDouble();
                if (roll < 0.3)
                {
                    await SendAsync(OperationKind.Stop, vm, null, random, http => http.PostAsync($"v1/vms/{vm}/stop", null));
                }
                else if (roll < 0.6)
                {
                    await SendAsync(OperationKind.Start, vm, null, random, http => http.PostAsync($"v1/vms/{vm}/start", null));
                }
                else if (roll < 0.8)
                {
                    var value = $"v{random.Next(1000)}";
                    await SendAsync(OperationKind.Label, vm, value, random,
                        http => http.PutAsync($"v1/vms/{vm}/labels", BenchHttp.JsonContent($$"""{"{{LabelKey}}":"{{value}}"}""")));
                }
                else
                {
                    var outcome = await SendAsync(OperationKind.Delete, vm, null, random, http => http.DeleteAsync($"v1/vms/{vm}"));
                    if (outcome.Outcome != OperationOutcome.Unknown)
                    {
                        mine.Remove(vm); // gone, or was never there (its create was lost): an unanswered delete is tried again later
                    }
                }
            }

            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(300 + random.Next(900)), stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>True when the VM may exist: acknowledged, or unanswered after every try.</summary>
    private async Task<bool> CreateAsync(string name, Random random)
    {
        var key = Guid.NewGuid().ToString("N");
        var body = $$"""{"name":"{{name}}","vcpus":1,"memoryMiB":128,"image":"demo","restartPolicy":"always"}""";
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            var outcome = await SendAsync(OperationKind.Create, name, null, random, async http =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "v1/vms") { Content = BenchHttp.JsonContent(body) };
                request.Headers.Add("Idempotency-Key", key);
                return await http.SendAsync(request);
            }, attempt);
            if (outcome.Outcome != OperationOutcome.Unknown)
            {
                return outcome.Outcome == OperationOutcome.Ok;
            }

            await Task.Delay(TimeSpan.FromSeconds(1));
        }

        return true;
    }

    private async Task<ChaosOperation> SendAsync(OperationKind kind, string vm, string? value, Random random,
        Func<HttpClient, Task<HttpResponseMessage>> send, int attempt = 1)
    {
        var index = history.NextIndex();
        var invoked = clock.Elapsed.TotalSeconds;
        var host = random.Next(1, cluster.Hosts + 1);
        var (outcome, detail, id) = (OperationOutcome.Unknown, $"h{host} is down", (string?)null);
        if (cluster.Client(host) is { } http)
        {
            try
            {
                using var response = await send(http);
                var text = await response.Content.ReadAsStringAsync();
                var status = (int)response.StatusCode;
                (outcome, detail) = status switch
                {
                    < 300 => (OperationOutcome.Ok, $"{status} from h{host}"),
                    < 500 and not (int)HttpStatusCode.RequestTimeout => (OperationOutcome.Refused, $"{status} from h{host}: {Brief(text)}"),
                    _ => (OperationOutcome.Unknown, $"{status} from h{host}: {Brief(text)}"),
                };
                if (kind == OperationKind.Create && outcome == OperationOutcome.Ok)
                {
                    id = (string?)JsonNode.Parse(text)?["id"];
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                detail = $"no answer from h{host}: {ex.GetType().Name}";
            }
        }

        var operation = new ChaosOperation(index, kind, vm, value, invoked, clock.Elapsed.TotalSeconds, outcome,
            attempt > 1 ? $"attempt {attempt.ToString(CultureInfo.InvariantCulture)}: {detail}" : detail, id);
        history.Add(operation);
        return operation;
    }

    private static string Brief(string text) => text.Length <= 160 ? text : text[..160] + "…";
}
