// Helpers: a scratch directory, an injectable environment, recorded actions and a scripted HTTP handler.
using System.Net;
using System.Text;

namespace Orchestrator.Cli.Tests;

internal sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "orch-cli-" + Guid.NewGuid().ToString("N"));

    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal static class Env
{
    /// <summary>An environment with only these variables (no HOME unless given).</summary>
    public static Func<string, string?> Of(params (string Name, string Value)[] vars)
    {
        var map = vars.ToDictionary(v => v.Name, v => v.Value);
        return name => map.GetValueOrDefault(name);
    }
}

internal sealed class RecordingActions : ICliActions
{
    public object? Last { get; private set; }

    public Task<int> VmCreateAsync(VmCreateArgs args, CancellationToken ct) => Record(args);

    public Task<int> VmShowAsync(VmShowArgs args, CancellationToken ct) => Record(args);

    public Task<int> HostShowAsync(HostShowArgs args, CancellationToken ct) => Record(args);

    public Task<int> VmSetAsync(VmSetArgs args, CancellationToken ct) => Record(args);

    public Task<int> CallAsync(ApiCallArgs args, CancellationToken ct) => Record(args);

    public Task<int> VmChangeAsync(VmChangeArgs args, CancellationToken ct) => Record(args);

    public Task<int> ListAsync(ListArgs args, CancellationToken ct) => Record(args);

    public Task<int> ApplyAsync(ApplyArgs args, CancellationToken ct) => Record(args);
    public Task<int> EventsAsync(EventsArgs args, CancellationToken ct) => Record(args);

    public Task<int> VmConsoleAsync(VmConsoleArgs args, CancellationToken ct) => Record(args);

    public Task<int> ImageImportAsync(ImageImportArgs args, CancellationToken ct) => Record(args);

    private Task<int> Record(object args)
    {
        Last = args;
        return Task.FromResult(0);
    }

    /// <summary>Parses and invokes <paramref name="args"/>; returns what the action received.</summary>
    public static T Bind<T>(params string[] args)
    {
        var actions = new RecordingActions();
        var parse = CliSyntax.Build(actions).Parse(args);
        Assert.True(parse.Errors.Count == 0, string.Join("; ", parse.Errors.Select(e => e.Message)));
        parse.Invoke(new System.CommandLine.InvocationConfiguration { Output = TextWriter.Null, Error = TextWriter.Null });
        return Assert.IsType<T>(actions.Last);
    }
}

/// <summary>Answers each request with the next scripted response for its method and path; records what it got.</summary>
internal sealed class ScriptedHandler : HttpMessageHandler
{
    private readonly Dictionary<string, Queue<(HttpStatusCode Status, string Body, Stream? Stream)>> _script = new();

    public List<(HttpMethod Method, string Path, string? Body, string? Authorization, string Query)> Requests { get; } = new();

    /// <summary>Each request's whole URI (with its query) and body media type, in the order of <see cref="Requests"/>.</summary>
    public List<(Uri Uri, string? MediaType)> Sent { get; } = new();

    /// <summary>Queues an answer; the last answer for a route repeats once the queue is down to it.</summary>
    public ScriptedHandler On(string method, string path, HttpStatusCode status, string body) => Enqueue(method, path, (status, body, null));

    /// <summary>Queues a 200 whose body is <paramref name="body"/> as the test writes it (an event stream held open).</summary>
    public ScriptedHandler On(string method, string path, Stream body) => Enqueue(method, path, (HttpStatusCode.OK, "", body));

    private ScriptedHandler Enqueue(string method, string path, (HttpStatusCode, string, Stream?) answer)
    {
        lock (_script)
        {
            var key = $"{method} {path}";
            if (!_script.TryGetValue(key, out var queue))
            {
                _script[key] = queue = new Queue<(HttpStatusCode, string, Stream?)>();
            }

            queue.Enqueue(answer); // a test may script more while a command runs
        }

        return this;
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var body = request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken);
        lock (Requests)
        {
            Requests.Add((request.Method, request.RequestUri!.AbsolutePath, body, request.Headers.Authorization?.ToString(), request.RequestUri.Query));
            Sent.Add((request.RequestUri, request.Content?.Headers.ContentType?.MediaType));
        }

        var key = $"{request.Method.Method} {request.RequestUri!.AbsolutePath}";
        (HttpStatusCode Status, string Body, Stream? Stream) answer;
        lock (_script)
        {
            if (!_script.TryGetValue(key, out var queue) || queue.Count == 0)
            {
                return new HttpResponseMessage(HttpStatusCode.NotImplemented) { Content = new StringContent($"no script for {key}") };
            }

            answer = queue.Count > 1 ? queue.Dequeue() : queue.Peek();
        }

        var (status, text, stream) = answer;
        if (stream is not null)
        {
            return new HttpResponseMessage(status) { Content = new StreamContent(stream) };
        }

        var contentType = (int)status >= 400 ? "application/problem+json" : "application/json";
        return new HttpResponseMessage(status) { Content = new StringContent(text, Encoding.UTF8, contentType) };
    }
}

internal static class Json
{
    public static string Vm(string name = "web1", string state = "Ready", string? reason = null, string? readyAt = "2025-01-01T12:00:02.840Z") =>
        $$"""
        {"id":"0f8fad5b-d9cb-469f-a165-70867728950e","name":"{{name}}","tenant":"admin","vcpus":1,"memoryMiB":256,
         "image":"demo","restartPolicy":"on-failure","desiredState":"Running","state":"{{state}}",
         "reason":{{(reason is null ? "null" : $"\"{reason}\"")}},"host":"host-a","epoch":3,"pid":4242,"restarts":1,
         "createdAt":"2025-01-01T12:00:00Z","readyAt":{{(readyAt is null ? "null" : $"\"{readyAt}\"")}},
         "vcpuThreads":[{"index":0,"threadId":4250,"cpuSeconds":1.5}]}
        """;
}

/// <summary>A CLI run against a scripted handler, with captured output.</summary>
internal sealed class CliRun
{
    public StringWriter Out { get; } = new();

    public StringWriter Error { get; } = new();

    public int ExitCode { get; private set; }

    public static async Task<CliRun> Of(ScriptedHandler? handler, Func<string, string?>? env, params string[] args)
    {
        var run = new CliRun();
        var context = new CliContext
        {
            Out = run.Out,
            Error = run.Error,
            GetEnvironmentVariable = env ?? Env.Of(("ORCHESTRATOR_URL", "http://node.test:7480"), ("ORCHESTRATOR_API_KEY", "sekrit-key")),
            HttpHandler = handler,
            PollInterval = TimeSpan.FromMilliseconds(5),
        };
        run.ExitCode = await OrchestratorCli.RunAsync(args, context, CancellationToken.None);
        return run;
    }
}
