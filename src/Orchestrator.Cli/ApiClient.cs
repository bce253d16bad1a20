// One HttpClient for the life of a command; every API call and its error mapping.
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Reflection;
using System.Text;
using System.Text.Json;
using Orchestrator.Contracts;

namespace Orchestrator.Cli;

/// <summary>A successful answer: the raw body (for <c>--output json</c>) and its status.</summary>
internal sealed record ApiResponse(HttpStatusCode Status, string Body)
{
    public T Read<T>()
    {
        try
        {
            return JsonSerializer.Deserialize<T>(Body, WireJson.Options)
                ?? throw new CliException($"the node answered {(int)Status} with an empty body");
        }
        catch (JsonException e)
        {
            throw new CliException($"the node's answer is not the JSON this client expects: {e.Message}");
        }
    }
}

internal sealed partial class ApiClient : IDisposable
{
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);

    private readonly HttpClient _http;
    private readonly NodeConnection _connection;

    /// <param name="timeout">for each request; <see cref="RequestTimeout"/> unless a command waits on the server longer.</param>
    public ApiClient(NodeConnection connection, HttpMessageHandler? handler = null, TimeSpan? timeout = null)
    {
        _connection = connection;
        _http = handler is null ? new HttpClient() : new HttpClient(handler, disposeHandler: false);
        _http.BaseAddress = connection.Url;
        _http.Timeout = timeout ?? RequestTimeout;
        _http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("orchestrator-cli", Version));
        if (connection.ApiKey is not null)
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", connection.ApiKey);
        }
    }

    public Uri Url => _connection.Url;

    /// <summary>The key requests carry (for the console's WebSocket, which is not sent through this client).</summary>
    public string? ApiKey => _connection.ApiKey;

    public static string VmPath(string name) => $"v1/vms/{Uri.EscapeDataString(name)}";

    public Task<ApiResponse> GetAsync(string path, CancellationToken ct) =>
        SendAsync(HttpMethod.Get, path, null, ct);

    public Task<ApiResponse> PostAsync(string path, object? body, CancellationToken ct) =>
        SendAsync(HttpMethod.Post, path, body, ct);

    /// <summary>POST of a text body (an apply file) as <paramref name="mediaType"/>, UTF-8.</summary>
    public Task<ApiResponse> PostTextAsync(string path, string text, string mediaType, CancellationToken ct) =>
        SendAsync(HttpMethod.Post, path, new StringContent(text, Encoding.UTF8, mediaType), ct);

    /// <summary>POST of a body the caller made (an image's bytes, streamed).</summary>
    /// <summary>
    /// An upload: sent with <c>Expect: 100-continue</c>, so that a node refusing it before reading it (a quota, a
    /// permission) answers with its reason instead of cutting off a client still writing the body (a broken pipe).
    /// </summary>
    public Task<ApiResponse> PostContentAsync(string path, HttpContent content, CancellationToken ct) =>
        SendAsync(HttpMethod.Post, path, content, ct, expectContinue: true);

    public Task<ApiResponse> PatchAsync(string path, object body, CancellationToken ct) =>
        SendAsync(HttpMethod.Patch, path, body, ct);

    public Task<ApiResponse> DeleteAsync(string path, CancellationToken ct) =>
        SendAsync(HttpMethod.Delete, path, null, ct);

    /// <summary>GET that returns null on 404 instead of throwing (for waiting on a delete).</summary>
    public async Task<ApiResponse?> GetOrNullAsync(string path, CancellationToken ct)
    {
        try
        {
            return await GetAsync(path, ct).ConfigureAwait(false);
        }
        catch (ApiProblemException e) when (e.StatusCode == (int)HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    public void Dispose() => _http.Dispose();

    public Task<ApiResponse> SendAsync(HttpMethod method, string path, object? body, CancellationToken ct) =>
        SendAsync(method, path,
            body is null ? null : new StringContent(JsonSerializer.Serialize(body, body.GetType(), WireJson.Options), Encoding.UTF8, "application/json"),
            ct);

    private async Task<ApiResponse> SendAsync(HttpMethod method, string path, HttpContent? content, CancellationToken ct, bool expectContinue = false)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Content = content;
        request.Headers.ExpectContinue = expectContinue ? true : null;

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new CliException(DescribeUnreachable(e));
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new CliException($"the node at {Display(Url)} did not answer within {_http.Timeout.TotalSeconds:0} s");
        }

        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            if (response.IsSuccessStatusCode)
            {
                return new ApiResponse(response.StatusCode, text);
            }

            throw new ApiProblemException(ReadProblem(text, response), (int)response.StatusCode);
        }
    }

    private static ProblemDetails ReadProblem(string text, HttpResponseMessage response)
    {
        ProblemDetails? problem = null;
        try
        {
            problem = string.IsNullOrWhiteSpace(text) ? null : JsonSerializer.Deserialize<ProblemDetails>(text, WireJson.Options);
        }
        catch (JsonException)
        {
        }

        if (problem is not null && (problem.Title is not null || problem.Detail is not null))
        {
            return problem;
        }

        // Not problem details (a proxy's HTML page, an empty 404): say what we have, briefly.
        var firstLine = text.Split('\n', 2)[0].Trim();
        return new ProblemDetails(
            null,
            response.ReasonPhrase ?? $"HTTP {(int)response.StatusCode}",
            (int)response.StatusCode,
            firstLine.Length is > 0 and <= 200 ? firstLine : null,
            null);
    }

    private string DescribeUnreachable(HttpRequestException e)
    {
        var reason = e.InnerException is SocketException s ? s.Message : e.Message;
        var message = $"cannot reach the node at {Display(Url)}: {reason}";
        if (_connection.UrlSource == ConnectionSource.DataDirectory && _connection.DiscoveredPid is { } pid && !IsRunning(pid))
        {
            message += $"\n  {Path.Combine(_connection.DataDirectory ?? ".", NodeDiscoveryFiles.NodeFileName)} is stale: " +
                       $"its node (pid {pid}) is not running; start one with `./orchestrator node`";
        }

        return message;
    }

    private static string Display(Uri url) => url.GetLeftPart(UriPartial.Path).TrimEnd('/');

    private static bool IsRunning(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    private static string Version =>
        typeof(ApiClient).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";
}
